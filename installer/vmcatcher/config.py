"""The handler's configuration and credentials, parsed once into frozen values.

`<root>/etc/satchel/vmcatcher.conf` (INI, written by `install vmcatcher register`)::

    [vmcatcher]
    endpoint = http://localhost:2633/RPC2     # required: OpenNebula XML-RPC
    credentials_file = /etc/satchel/vmcatcher.auth   # required, a target path
    datastore = default                       # required: image datastore name
    image_format = raw                        # raw | qcow2 (default raw)
    first_version_permissions = 600           # octal u/m/a digits (default 600)
    ready_timeout = 600                       # seconds to wait for READY
    poll_interval = 5                         # seconds between polls
    lock_timeout = 3600                       # seconds to wait for another run

The credentials file holds one line ``user:password`` (OpenNebula's one_auth
format) and must not be readable by group or others.  Paths in the config are
paths on the target and are resolved under ``--root``.
"""

import configparser
import os
import stat
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from installer.errors import InputError

SECTION = "vmcatcher"
FORMATS = ("raw", "qcow2")


def parse_permissions(text: str) -> Tuple[int, ...]:
    """'640' -> OpenNebula's nine bits OWNER_U/M/A, GROUP_U/M/A, OTHER_U/M/A.

    Each octal digit is use=4, manage=2, admin=1, as `oneimage chmod` reads it.
    """
    if len(text) != 3 or any(c not in "01234567" for c in text):
        raise ValueError(f"expected three octal digits like 600, got {text!r}")
    return tuple((int(c) >> shift) & 1 for c in text for shift in (2, 1, 0))


def format_permissions(bits: Tuple[int, ...]) -> str:
    return "".join(str(bits[i] * 4 + bits[i + 1] * 2 + bits[i + 2]) for i in (0, 3, 6))


@dataclass(frozen=True)
class Config:
    endpoint: str
    credentials_file: str  # resolved under the root
    datastore: str
    image_format: str
    first_version_permissions: Tuple[int, ...]
    ready_timeout: float
    poll_interval: float
    lock_timeout: float


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


def _format(text: str) -> str:
    if text not in FORMATS:
        raise ValueError(f"expected one of {', '.join(FORMATS)}, got {text!r}")
    return text


def _endpoint(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// XML-RPC URL, got {text!r}")
    return text


_KEYS: Dict[str, Tuple[Callable[[str], object], object]] = {
    # key: (parser, default or None when required)
    "endpoint": (_endpoint, None),
    "credentials_file": (str, None),
    "datastore": (str, None),
    "image_format": (_format, "raw"),
    "first_version_permissions": (parse_permissions, "600"),
    "ready_timeout": (_positive, "600"),
    "poll_interval": (_positive, "5"),
    "lock_timeout": (_positive, "3600"),
}


def under_root(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/")) if os.path.isabs(path) else \
        os.path.join(root, path)


def load_config(path: str, root: str = "/") -> Config:
    """Read the INI file; every problem is reported at once, each with its place."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file",
                         hint="run `install vmcatcher register` first") from None
    except (OSError, configparser.Error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    problems: List[str] = [f"{path}: [{s}]: unknown section"
                           for s in parser.sections() if s != SECTION]
    values: Dict[str, object] = {}
    section = parser[SECTION] if parser.has_section(SECTION) else {}
    if not parser.has_section(SECTION):
        problems.append(f"{path}: [{SECTION}]: missing section")
    for key in section:
        if key not in _KEYS:
            problems.append(f"{path}: [{SECTION}] {key}: unknown key")
    for key, (convert, default) in _KEYS.items():
        raw = section.get(key, default)
        if raw is None or raw == "":
            problems.append(f"{path}: [{SECTION}] {key}: missing")
            continue
        try:
            values[key] = convert(str(raw).strip())
        except ValueError as e:
            problems.append(f"{path}: [{SECTION}] {key}: {e}")
    if problems:
        raise InputError("\n".join(problems))
    values["credentials_file"] = under_root(root, str(values["credentials_file"]))
    return Config(**values)  # type: ignore[arg-type]


def read_credentials(path: str) -> str:
    """The `user:password` session string; its content never appears in errors."""
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    except OSError as e:
        raise InputError(f"cannot read the OpenNebula credentials file {path}: "
                         f"{e.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"the credentials file {path} is readable by others "
                         f"(mode {stat.S_IMODE(st.st_mode):04o})", hint=f"chmod 600 {path}")
    if len(lines) != 1 or ":" not in lines[0] or lines[0].startswith(":"):
        raise InputError(f"the credentials file {path} must hold one line user:password")
    return lines[0]
