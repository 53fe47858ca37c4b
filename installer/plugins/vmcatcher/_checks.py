"""Checks of the registration's values, shared by the plugin (environment keys)
and the recipe's [vmcatcher] section. Each returns a problem message or None."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Optional

from installer.vmcatcher.config import FORMATS, parse_permissions

# Characters that would break the INI file (newlines, " #" comments) or the
# double-quoted shell assignment in vmcatcher's environment file.
_UNSAFE_INI = re.compile(r"[\x00-\x1f\x7f#]")
_UNSAFE_SHELL = re.compile(r"[\x00-\x1f\x7f\"$`\\#]")


def endpoint(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value:
        return "expected an http:// or https:// URL of OpenNebula's XML-RPC endpoint"
    if value != value.strip() or any(c.isspace() for c in value) or _UNSAFE_INI.search(value):
        return f"{value!r} is not a URL (spaces, control characters or # in it)"
    try:
        url = urllib.parse.urlsplit(value)
        url.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        return f"{value!r} is not a valid URL: {exc}"
    if url.scheme not in ("http", "https") or not url.hostname:
        return (f"{value!r} is not an http:// or https:// URL with a host "
                "(for example http://one.example.org:2633/RPC2)")
    if url.username is not None or url.password is not None:
        return "put no user or password in the URL: give VMCATCHER/user and VMCATCHER/password"
    return None


def permissions(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return "expected three octal digits as a string, like \"600\""
    try:
        parse_permissions(value)
    except ValueError as exc:
        return str(exc)
    return None


def timeout(value: Any) -> Optional[str]:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return f"expected a positive number of seconds, got {value!r}"
    return None


def image_format(value: Any) -> Optional[str]:
    if value not in FORMATS:
        return f"expected one of {', '.join(FORMATS)}, got {value!r}"
    return None


def name(value: Any) -> Optional[str]:
    """A datastore or user name written into the INI or the credentials file."""
    if not isinstance(value, str) or not value.strip():
        return "expected a non-empty name"
    if value != value.strip() or _UNSAFE_INI.search(value) or ":" in value:
        return f"{value!r} has surrounding spaces, control characters, '#' or ':'"
    return None


def password(value: Any) -> Optional[str]:
    # never show the value itself
    if not isinstance(value, str) or not value:
        return "expected a non-empty password"
    if any(c in value for c in "\r\n\x00"):
        return "the password must be one line (no newline or NUL characters)"
    return None


def target_path(value: Any, shell: bool = False) -> Optional[str]:
    text = str(value) if value is not None else ""
    if not text.startswith("/"):
        return f"expected an absolute path on the target, got {text!r}"
    if "/../" in text + "/":
        return f"{text!r} must not contain '..'"
    unsafe = _UNSAFE_SHELL if shell else _UNSAFE_INI
    if unsafe.search(text):
        return f"{text!r} holds characters that cannot be written safely here"
    return None
