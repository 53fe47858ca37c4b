"""Typed, documented environment keys and the strict parsing of their values."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from installer.errors import InputError

# The value types a key may have, by the name used in answer files and messages.
TYPES: Dict[str, type] = {"str": str, "int": int, "bool": bool, "path": pathlib.PurePosixPath}
_TYPE_NAMES = {v: k for k, v in TYPES.items()}
_TYPE_NAMES[pathlib.Path] = "path"
_TYPE_NAMES[pathlib.PurePath] = "path"

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def type_name(tp: Any) -> str:
    """'str', 'int', 'bool' or 'path' for a key type given as a type or a name."""
    if isinstance(tp, str) and tp in TYPES:
        return tp
    try:
        return _TYPE_NAMES[tp]
    except (KeyError, TypeError):
        raise ValueError(f"unsupported key type {tp!r} (use str, int, bool or path)") from None


def parse_bool(text: str) -> bool:
    """true/yes/1 -> True, false/no/0 -> False (any case); anything else is an error."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected one of true/false/yes/no/1/0, got {text!r}")


@dataclass(frozen=True)
class Key:
    """One environment key: `Key("DB/host", str, default="localhost", doc="...")`.

    `type` is str, int, bool or path (pathlib.Path / "path"); `choices` restricts
    the accepted values; `secret` keeps the value out of logs and generated answer
    files; `required` makes a missing value (None) an error before any change.
    """

    name: str
    type: Any = str
    default: Any = None
    doc: str = ""
    secret: bool = False
    required: bool = False
    choices: Optional[Tuple[Any, ...]] = None

    def __post_init__(self) -> None:
        if not self.name or "=" in self.name or self.name != self.name.strip():
            raise ValueError(f"bad key name {self.name!r}")
        type_name(self.type)  # validates
        if self.default is not None:
            object.__setattr__(self, "default", self.check(self.default))
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.check(c, choices=False)
                                                      for c in self.choices))

    @property
    def kind(self) -> str:
        """The type name: 'str', 'int', 'bool' or 'path'."""
        return type_name(self.type)

    def parse(self, text: str) -> Any:
        """Parse a string (from --set, an answer file or a dialog) into a value.

        Raises ValueError with a message naming the expected type.
        """
        kind = self.kind
        if kind == "bool":
            value: Any = parse_bool(text)
        elif kind == "int":
            try:
                value = int(text.strip(), 10)
            except ValueError:
                raise ValueError(f"expected an integer, got {text!r}") from None
        elif kind == "path":
            if not text:
                raise ValueError("expected a path, got an empty string")
            value = pathlib.PurePosixPath(text)
        else:
            value = text
        return self.check(value)

    def check(self, value: Any, choices: bool = True) -> Any:
        """Return `value` if it has this key's type (None is always allowed), else
        raise TypeError. Paths are normalised to PurePosixPath."""
        if value is None:
            return None
        kind = self.kind
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "path":
            ok = isinstance(value, (str, pathlib.PurePath))
            if ok:
                value = pathlib.PurePosixPath(value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise TypeError(f"{self.name}: expected {kind}, got {type(value).__name__}")
        if choices and self.choices is not None and value not in self.choices:
            shown = ", ".join(str(c) for c in self.choices)
            raise ValueError(f"{self.name}: {value!r} is not one of {shown}")
        return value

    def show(self, value: Any) -> str:
        """The value as it may appear in logs: secrets masked by key."""
        if self.secret and value is not None:
            return "***"
        return repr(value)


def parse_setting(keys: Dict[str, Key], text: str, origin: str) -> Tuple[Key, Any]:
    """Parse one `KEY=VALUE` (from --set); InputError naming the origin."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(f"{origin}: expected KEY=VALUE, got {text!r}")
    key = keys.get(name)
    if key is None:
        raise InputError(f"{origin}: unknown key {name!r}",
                         hint=_near_hint(keys, name))
    try:
        return key, key.parse(raw)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{origin}: {name}: {exc}") from None


def _near_hint(keys: Dict[str, Key], name: str) -> Optional[str]:
    import difflib

    near = difflib.get_close_matches(name, list(keys), n=3)
    return f"did you mean {', '.join(near)}?" if near else None
