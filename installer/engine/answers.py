"""Answer files in otopi's INI form.

    [environment:default]
    DB/host=str:localhost
    DB/port=int:5432
    DB/ssl=bool:true
    DB/name=none:None

Unknown keys, unknown sections, bad types and values are errors naming file:line.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Collection, Dict, Iterable, List, Tuple

from installer.engine import fsutil
from installer.engine.environment import ANSWERS, Environment
from installer.engine.keys import Key
from installer.errors import InputError

SECTION = "environment:default"
_ACCEPTED_SECTIONS = ("environment:default", "environment:init")
# Which answer-file types each key type accepts.
_COMPATIBLE = {"str": ("str",), "path": ("str", "path"), "int": ("int",), "bool": ("bool",)}


def parse_answers(path: pathlib.Path, keys: Dict[str, Key], lenient: bool = False,
                  foreign: Collection[str] = ()) -> List[Tuple[Key, Any, str]]:
    """Parse one answer file; returns (key, value, 'file:line') in file order.
    Lines of keys not in `keys` are skipped when `lenient` (every such key) or when
    the key is in `foreign` (another action's answers in a shared file)."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read answer file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    out: List[Tuple[Key, Any, str]] = []
    section = None
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InputError(f"{where}: bad section header {line!r}")
            section = line[1:-1].strip()
            if section not in _ACCEPTED_SECTIONS:
                raise InputError(f"{where}: unknown section [{section}]",
                                 hint=f"answer files use [{SECTION}]")
            continue
        if section is None:
            raise InputError(f"{where}: value before any section",
                             hint=f"start the file with [{SECTION}]")
        name = line.partition("=")[0].strip()
        if name not in keys and (lenient or name in foreign):
            continue
        out.append(_parse_line(line, keys, where))
    return out


def _parse_line(line: str, keys: Dict[str, Key], where: str) -> Tuple[Key, Any, str]:
    name, sep, typed = line.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(f"{where}: expected KEY=type:value, got {line!r}")
    key = keys.get(name)
    if key is None:
        raise InputError(f"{where}: unknown key {name!r}")
    tname, sep, raw = typed.partition(":")
    tname = tname.strip()
    if not sep or tname not in ("str", "int", "bool", "none", "path"):
        raise InputError(f"{where}: {name}: expected type:value with type one of "
                         f"str, int, bool, none; got {typed!r}")
    if tname == "none":
        if key.required:
            raise InputError(f"{where}: {name} is required and cannot be none")
        return key, None, where
    if tname not in _COMPATIBLE[key.kind]:
        raise InputError(f"{where}: {name} is of type {key.kind}, not {tname}")
    try:
        return key, key.parse(raw), where
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {name}: {exc}") from None


def load_answers(env: Environment, paths: Iterable[pathlib.Path],
                 foreign: Collection[str] = ()) -> None:
    """Apply answer files to the environment, later files winning."""
    for path in paths:
        for key, value, where in parse_answers(pathlib.Path(path), env.keys,
                                               foreign=foreign):
            env.set(key.name, value, source=ANSWERS, origin=where)


def format_value(key: Key, value: Any) -> str:
    """`type:value` as written in answer files."""
    if value is None:
        return "none:None"
    if key.kind == "bool":
        return "bool:" + ("true" if value else "false")
    if key.kind == "int":
        return f"int:{value}"
    return f"str:{value}"


def render_answers(env: Environment, secrets: bool = False,
                   names: Iterable[str] = ()) -> Tuple[bytes, List[str]]:
    """The answer file of this run's answers (answer files, --set, questions, kept
    values): (text, names of secret keys left out). `names` limits it to those keys."""
    lines = ["# satchel answer file", f"[{SECTION}]"]
    left_out = []
    wanted = set(names)
    for name in env:
        if not env.answered(name) or (wanted and name not in wanted):
            continue
        key = env.keys[name]
        if key.secret and not secrets:
            left_out.append(name)
            continue
        value = env[name]
        if "\n" in str(value):
            raise InputError(f"{name}: a value with a newline cannot go in an answer file")
        lines.append(f"{name}={format_value(key, value)}")
    return ("\n".join(lines) + "\n").encode("utf-8"), left_out


def write_answers(env: Environment, path: pathlib.Path, secrets: bool = False) -> List[str]:
    """Write the answers of this run to `path`, mode 0600; secret keys are left out
    unless `secrets`. Returns the names left out."""
    data, left_out = render_answers(env, secrets)
    fsutil.atomic_write(pathlib.Path(os.path.abspath(path)), data, mode=0o600)
    return left_out
