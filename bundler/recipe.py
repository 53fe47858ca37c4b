"""Recipes: TOML parsed once, at the edge, into frozen dataclasses.

Every problem is collected and reported at once, each with its key path and the
file name (`recipes/x.toml: files[2].exclude: expected a list of strings`); an
unknown key is an error, because a typo must not be ignored. Paths in a recipe
are relative to the recipe's own directory.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional

from installer.errors import InputError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
LABEL_RE = re.compile(r"^[A-Z0-9_]{1,32}$")
ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "noarch")


class RecipeError(InputError):
    """A recipe with problems; `problems` lists each as `file: key: message`."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = [f"{path}: {p}" for p in problems]
        super().__init__(
            "\n".join(self.problems) if len(problems) > 1 else self.problems[0],
            hint="fix the recipe and run again" if problems else None,
        )


@dataclass(frozen=True)
class Bundle:
    name: str
    version: str
    distro: str  # os-release ID (or an ID_LIKE entry) of the target
    distro_version: str  # major version, e.g. "9"
    arch: str
    label: str  # ISO volume label
    source_date_epoch: Optional[int] = None


@dataclass(frozen=True)
class Packages:
    include: tuple[str, ...] = ()  # names or globs
    sources: tuple[Path, ...] = ()  # directories of RPMs, or local repos
    base: tuple[str, ...] = ()  # names/capabilities the target distro provides
    everything: bool = False  # snapshot: all installed packages not in the base
    specs: tuple[Path, ...] = ()  # spec files to build with rpmbuild first (demo)
    allow_unsigned: bool = False  # the import accepts unsigned RPMs only when this is set


@dataclass(frozen=True)
class Override:
    match: str  # glob on the path inside the set
    owner: Optional[str] = None
    group: Optional[str] = None
    mode: Optional[int] = None


@dataclass(frozen=True)
class FileSet:
    name: str
    root: Optional[Path]  # where the tree is read from (None: the snapshot source root)
    paths: tuple[str, ...]  # relative to root; the same paths on the target
    exclude: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()
    skip: frozenset[str] = frozenset()  # exact paths left out (snapshot: packaged files)


@dataclass(frozen=True)
class Secrets:
    root: Optional[Path]
    paths: tuple[str, ...]
    encrypt: str = "none"  # none | passphrase | recipient
    passphrase_file: Optional[Path] = None
    recipient_cert: Optional[Path] = None


@dataclass(frozen=True)
class Database:
    names: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    passfile: Optional[Path] = None  # a pgpass file; never a password in the recipe
    roles: bool = True


@dataclass(frozen=True)
class Services:
    enable: tuple[str, ...] = ()  # systemd units the import enables (and starts on a live /)


@dataclass(frozen=True)
class Recipe:
    path: Path
    bundle: Bundle
    packages: Packages
    files: tuple[FileSet, ...]
    secrets: Optional[Secrets]
    database: Optional[Database]
    services: Services = Services()
    # Pass-through sections, validated by the plugin that owns them.
    plugins: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}))

    @property
    def base_dir(self) -> Path:
        return self.path.parent


# Validators for pass-through sections: name -> function(table) -> problems.
# Each installer plugin group that reads a recipe section registers one here.
SectionValidator = Callable[[Mapping[str, Any]], list[str]]
def _vmcatcher_section(table: Mapping[str, Any]) -> list[str]:
    from installer.plugins.vmcatcher import validate_recipe_section
    return validate_recipe_section(dict(table))


def _hooks_section(table: Mapping[str, Any]) -> list[str]:
    from installer.plugins.hooks import validate_recipe_section
    return validate_recipe_section(dict(table))


def _setup_section(table: Mapping[str, Any]) -> list[str]:
    from installer.plugins.setup import validate_recipe_section
    return validate_recipe_section(dict(table))


PLUGIN_SECTIONS: dict[str, Optional[SectionValidator]] = {
    "setup": _setup_section,
    "hooks": _hooks_section,
    "vmcatcher": _vmcatcher_section,
}


class _Reader:
    """Walks one TOML table, collecting problems with their key paths."""

    def __init__(self, problems: list[str], where: str, table: Any, base: Path) -> None:
        self.problems = problems
        self.where = where
        self.base = base
        self.table: dict[str, Any] = table if isinstance(table, dict) else {}
        self.used: set[str] = set()
        if not isinstance(table, dict):
            self.problem("", "expected a table")

    def key(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def problem(self, k: str, msg: str) -> None:
        self.problems.append(f"{self.key(k) if k else self.where}: {msg}")

    def get(self, k: str, kind: type, default: Any = None, required: bool = False) -> Any:
        self.used.add(k)
        if k not in self.table:
            if required:
                self.problem(k, "missing")
            return default
        v = self.table[k]
        ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
        if not ok:
            self.problem(k, f"expected {_kind_name(kind)}, got {type(v).__name__}")
            return default
        return v

    def string(self, k: str, default: Optional[str] = None, required: bool = False,
               pattern: Optional[re.Pattern[str]] = None, what: str = "") -> Any:
        v = self.get(k, str, default, required)
        if isinstance(v, str) and pattern is not None and not pattern.match(v):
            self.problem(k, f"{v!r} is not a valid {what or k}")
        return v

    def strings(self, k: str) -> tuple[str, ...]:
        v = self.get(k, list, [])
        if not all(isinstance(x, str) for x in v):
            self.problem(k, "expected a list of strings")
            return ()
        return tuple(v)

    def path(self, k: str, required: bool = False) -> Optional[Path]:
        v = self.string(k, required=required)
        return (self.base / v) if isinstance(v, str) else None

    def paths(self, k: str) -> tuple[Path, ...]:
        return tuple(self.base / p for p in self.strings(k))

    def sub(self, k: str, required: bool = False) -> Optional[_Reader]:
        self.used.add(k)
        if k not in self.table:
            if required:
                self.problem(k, "missing")
            return None
        return _Reader(self.problems, self.key(k), self.table[k], self.base)

    def subs(self, k: str) -> list[_Reader]:
        self.used.add(k)
        v = self.table.get(k, [])
        if not isinstance(v, list):
            self.problem(k, "expected an array of tables ([[" + k + "]])")
            return []
        return [_Reader(self.problems, f"{self.key(k)}[{i}]", t, self.base)
                for i, t in enumerate(v)]

    def finish(self) -> None:
        for k in sorted(set(self.table) - self.used):
            self.problem(k, "unknown key")


def _kind_name(kind: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false",
            list: "a list", dict: "a table"}.get(kind, kind.__name__)


def _relative_paths(r: _Reader, k: str) -> tuple[str, ...]:
    out = r.strings(k)
    for p in out:
        if p.startswith("/") or ".." in Path(p).parts:
            r.problem(k, f"{p!r} must be relative and stay inside its root")
    return out


def _mode(r: _Reader, k: str) -> Optional[int]:
    v = r.string(k)
    if v is None:
        return None
    try:
        mode = int(v, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        r.problem(k, f"{v!r} is not an octal mode such as \"0640\"")
        return None
    return mode


def _bundle(r: _Reader) -> Bundle:
    b = Bundle(
        name=r.string("name", required=True, pattern=NAME_RE, what="bundle name") or "",
        version=r.string("version", required=True, pattern=NAME_RE, what="version") or "",
        distro=r.string("distro", required=True, pattern=NAME_RE, what="distro ID") or "",
        distro_version=r.string("distro_version", required=True) or "",
        arch=r.string("arch", default="x86_64") or "",
        label=r.string("label", pattern=LABEL_RE,
                       what="volume label (A-Z, 0-9, _; at most 32)") or "",
        source_date_epoch=r.get("source_date_epoch", int),
    )
    if b.arch and b.arch not in ARCHES:
        r.problem("arch", f"{b.arch!r} is not one of {', '.join(ARCHES)}")
    if not b.label and b.name:
        b = Bundle(**{**b.__dict__, "label": re.sub(r"[^A-Z0-9_]", "_", b.name.upper())[:32]})
    r.finish()
    return b


def _packages(r: Optional[_Reader]) -> Packages:
    if r is None:
        return Packages()
    p = Packages(
        include=r.strings("include"),
        sources=r.paths("sources"),
        base=r.strings("base"),
        everything=bool(r.get("everything", bool, False)),
        specs=r.paths("specs"),
        allow_unsigned=bool(r.get("allow_unsigned", bool, False)),
    )
    if (p.include or p.everything) and not p.sources and not p.specs:
        r.problem("sources", "packages are selected but no source directory is given")
    r.finish()
    return p


def _fileset(r: _Reader) -> FileSet:
    overrides = []
    for o in r.subs("override"):
        overrides.append(Override(match=o.string("match", required=True) or "",
                                  owner=o.string("owner"), group=o.string("group"),
                                  mode=_mode(o, "mode")))
        o.finish()
    fs = FileSet(
        name=r.string("name", required=True, pattern=NAME_RE, what="file set name") or "",
        root=r.path("root"),
        paths=_relative_paths(r, "paths"),
        exclude=r.strings("exclude"),
        overrides=tuple(overrides),
    )
    if not fs.paths:
        r.problem("paths", "a file set needs at least one path")
    r.finish()
    return fs


def _secrets(r: Optional[_Reader]) -> Optional[Secrets]:
    if r is None:
        return None
    s = Secrets(
        root=r.path("root"),
        paths=_relative_paths(r, "paths"),
        encrypt=r.string("encrypt", default="none") or "none",
        passphrase_file=r.path("passphrase_file"),
        recipient_cert=r.path("recipient_cert"),
    )
    if s.encrypt not in ("none", "passphrase", "recipient"):
        r.problem("encrypt", f"{s.encrypt!r} is not one of none, passphrase, recipient")
    if s.encrypt == "passphrase" and s.passphrase_file is None:
        r.problem("passphrase_file", "required when encrypt = \"passphrase\"")
    if s.encrypt == "recipient" and s.recipient_cert is None:
        r.problem("recipient_cert", "required when encrypt = \"recipient\"")
    r.finish()
    return s


def _database(r: Optional[_Reader]) -> Optional[Database]:
    if r is None:
        return None
    port = r.get("port", int, 5432)
    if not 0 < port < 65536:
        r.problem("port", f"{port} is not a TCP port")
    d = Database(
        names=r.strings("names"),
        host=r.string("host", default="127.0.0.1") or "",
        port=port,
        user=r.string("user", default="postgres") or "",
        passfile=r.path("passfile"),
        roles=bool(r.get("roles", bool, True)),
    )
    if "password" in r.table:
        r.used.add("password")
        r.problem("password", "passwords do not belong in a recipe: use passfile "
                              "(a pgpass file with mode 0600)")
    if not d.names:
        r.problem("names", "name at least one database to dump")
    r.finish()
    return d


UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]+\.(service|socket|timer|path|target|mount)$")


def _services(r: Optional[_Reader]) -> Services:
    if r is None:
        return Services()
    units = r.strings("enable")
    for u in units:
        if not UNIT_RE.match(u):
            r.problem("enable", f"{u!r} is not a systemd unit name such as \"app.service\"")
    r.finish()
    return Services(enable=units)


def _plugin_section(r: _Reader, name: str) -> Mapping[str, Any]:
    validator = PLUGIN_SECTIONS[name]
    if validator is not None:
        r.problems.extend(f"{r.where}.{p}" for p in validator(r.table))
    return MappingProxyType(dict(r.table))


def parse(path: Path, text: str) -> Recipe:
    problems: list[str] = []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(path, [f"not valid TOML: {e}"]) from None
    top = _Reader(problems, "", data, path.parent)
    bundle_r = top.sub("bundle", required=True)
    bundle = _bundle(bundle_r) if bundle_r else Bundle("", "", "", "", "", "")
    packages = _packages(top.sub("packages"))
    files = tuple(_fileset(f) for f in top.subs("files"))
    names = [f.name for f in files]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"files: the name {n!r} is used more than once")
    secrets = _secrets(top.sub("secrets"))
    database = _database(top.sub("database"))
    services = _services(top.sub("services"))
    plugins = {}
    for name in PLUGIN_SECTIONS:
        sub = top.sub(name)
        if sub is not None:
            plugins[name] = _plugin_section(sub, name)
    top.finish()
    if problems:
        raise RecipeError(path, problems)
    return Recipe(path=path, bundle=bundle, packages=packages, files=files,
                  secrets=secrets, database=database, services=services,
                  plugins=MappingProxyType(plugins))


def load(path: Path) -> Recipe:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such recipe",
                         hint="recipes live in recipes/*.toml") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the recipe: {e}") from None
    return parse(path, text)
