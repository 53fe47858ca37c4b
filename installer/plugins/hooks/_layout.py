"""A vdsm hook set, as ovirt-host-deploy laid it out, read and checked the same way
by the builder (from the recipe's directory) and by the installer (from the bundle):

    hooks.d/<hook point>/<file>     installed to /usr/libexec/vdsm/hooks/<point>/<file>, 0755
    packages.d/<name>.<distro>      one package per line; `#` comments, blank lines
    plugins/<name>/__init__.py      a custom stage plugin, with any files beside it

Every problem is collected, each named by its path inside the set, so one run
reports them all. Standard library only (the installer uses it).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from installer.errors import InputError

SET_NAME = "vdsm"
BUNDLE_DIR = f"hooks/{SET_NAME}"  # inside the bundle
TARGET_HOOKS = "/usr/libexec/vdsm/hooks"
TARGET_PLUGINS = "/usr/share/satchel/hook-plugins"
TOP = ("hooks.d", "packages.d", "plugins")
SKIPPED = ("__pycache__",)  # bytecode never travels and is never compared

PACKAGE_RE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$")
PLUGIN_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Hook:
    point: str
    name: str
    path: Path

    @property
    def rel(self) -> str:
        return f"{self.point}/{self.name}"

    @property
    def target(self) -> str:
        return f"{TARGET_HOOKS}/{self.point}/{self.name}"


@dataclass(frozen=True)
class PackageList:
    file: str  # "hooks.rhel"
    distro: str  # "rhel"
    packages: Tuple[str, ...]


@dataclass(frozen=True)
class HookPlugin:
    name: str
    path: Path
    files: Tuple[str, ...]  # relative to path, '/' separated, sorted

    @property
    def target(self) -> str:
        return f"{TARGET_PLUGINS}/{self.name}"


@dataclass(frozen=True)
class HookSet:
    root: Path
    hooks: Tuple[Hook, ...] = ()
    lists: Tuple[PackageList, ...] = ()
    plugins: Tuple[HookPlugin, ...] = ()

    def lists_for(self, ids: Sequence[str]) -> List[PackageList]:
        """Every list whose distro is one of `ids` (os-release ID, then ID_LIKE)."""
        return [pl for pl in self.lists if pl.distro in ids]


def name_problem(name: str) -> Optional[str]:
    """Why `name` cannot be a hook point, hook or list file name (None: it can)."""
    if not name:
        return "an empty name"
    if "/" in name or "\\" in name:
        return "a name with a '/'"
    if ".." in name:
        return "a name with '..'"
    if name.startswith("."):
        return "a name with a leading dot"
    if any(ord(c) < 32 or c.isspace() for c in name):
        return "a name with white space or control characters"
    return None


def _kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a device, fifo or socket"


def _entries(directory: Path) -> List[Path]:
    return sorted(p for p in directory.iterdir() if p.name not in SKIPPED)


def parse_list(text: str, where: str, problems: List[str]) -> Tuple[str, ...]:
    """Package names of a packages.d list: one a line, `#` starts a comment."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not PACKAGE_RE.match(line):
            problems.append(f"{where}:{n}: {line!r} is not a package name "
                            "(one package name a line)")
            continue
        out.append(line)
    return tuple(dict.fromkeys(out))


def _hooks(top: Path, problems: List[str]) -> List[Hook]:
    out = []
    for point in _entries(top):
        where = f"hooks.d/{point.name}"
        why = name_problem(point.name)
        if why:
            problems.append(f"{where}: hook point is {why}")
            continue
        if _kind(point) != "a directory":
            problems.append(f"{where}: expected a hook point directory, found {_kind(point)}")
            continue
        for f in _entries(point):
            why = name_problem(f.name)
            if why:
                problems.append(f"{where}/{f.name}: hook file is {why}")
            elif _kind(f) != "a regular file":
                problems.append(f"{where}/{f.name}: a hook must be a regular file, "
                                f"this is {_kind(f)}")
            else:
                out.append(Hook(point.name, f.name, f))
    return out


def _lists(top: Path, problems: List[str]) -> List[PackageList]:
    out = []
    for f in _entries(top):
        where = f"packages.d/{f.name}"
        why = name_problem(f.name)
        stem, dot, distro = f.name.rpartition(".")
        if why:
            problems.append(f"{where}: list file is {why}")
        elif _kind(f) != "a regular file":
            problems.append(f"{where}: a package list must be a regular file, "
                            f"this is {_kind(f)}")
        elif not (dot and stem and distro):
            problems.append(f"{where}: a list is named <name>.<distro> (hooks.rhel)")
        else:
            text = f.read_text(encoding="utf-8", errors="replace")
            out.append(PackageList(f.name, distro, parse_list(text, where, problems)))
    return out


def _plugin_files(directory: Path, where: str, problems: List[str]) -> List[str]:
    out = []
    for entry in _entries(directory):
        rel = f"{where}/{entry.name}"
        why = name_problem(entry.name)
        if why:
            problems.append(f"{rel}: {why}")
        elif entry.suffix == ".pyc":
            continue
        elif _kind(entry) == "a directory":
            out += [f"{entry.name}/{r}" for r in _plugin_files(entry, rel, problems)]
        elif _kind(entry) != "a regular file":
            problems.append(f"{rel}: a plugin's files must be regular files, "
                            f"this is {_kind(entry)}")
        else:
            out.append(entry.name)
    return sorted(out)


def _plugins(top: Path, problems: List[str]) -> List[HookPlugin]:
    out = []
    for d in _entries(top):
        where = f"plugins/{d.name}"
        if _kind(d) != "a directory" or not PLUGIN_RE.match(d.name):
            problems.append(f"{where}: a plugin is a folder plugins/<name>/ (a Python "
                            "identifier) holding an __init__.py")
            continue
        files = _plugin_files(d, where, problems)
        if "__init__.py" not in files:
            problems.append(f"{where}: no Python module: a plugin folder needs an "
                            "__init__.py defining class Plugin(engine.PluginBase)")
            continue
        out.append(HookPlugin(d.name, d, tuple(files)))
    return out


def scan(directory: Path) -> Tuple[HookSet, List[str]]:
    """Read a hook set; returns it and every problem found (empty: it is good)."""
    problems: List[str] = []
    if not directory.is_dir():
        return HookSet(directory), [f"{directory}: not a directory"]
    hooks: List[Hook] = []
    lists: List[PackageList] = []
    plugins: List[HookPlugin] = []
    for entry in _entries(directory):
        if entry.name not in TOP:
            problems.append(f"{entry.name}: unknown entry (a hook set holds "
                            f"{', '.join(TOP)})")
        elif _kind(entry) != "a directory":
            problems.append(f"{entry.name}: expected a directory, found {_kind(entry)}")
        elif entry.name == "hooks.d":
            hooks = _hooks(entry, problems)
        elif entry.name == "packages.d":
            lists = _lists(entry, problems)
        else:
            plugins = _plugins(entry, problems)
    return HookSet(directory, tuple(hooks), tuple(lists), tuple(plugins)), problems


def check_lists(hooks_dir: Path, bundled_names: Iterable[str]) -> List[str]:
    """Each package a packages.d list names that the bundle does not carry."""
    carried = set(bundled_names)
    hookset, problems = scan(Path(hooks_dir))
    for pl in hookset.lists:
        for name in pl.packages:
            if name not in carried:
                problems.append(f"packages.d/{pl.file}: {name} is not carried by the bundle")
    return problems


def raise_problems(problems: Sequence[str], where: str, hint: str) -> None:
    if problems:
        raise InputError(f"{where}: bad vdsm hook set:\n  " + "\n  ".join(problems),
                         hint=hint)


# --- the installer's side ---------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_in_bundle(bundle: Path) -> List[str]:
    """Check hooks/vdsm/ against SHA256SUMS (itself checked against the manifest):
    missing, altered and extra files. Cheap: only the hook set is hashed."""
    from installer.bundle import MANIFEST, SUMS, load_manifest, parse_sums

    try:
        sums_bytes = (bundle / SUMS).read_bytes()
    except FileNotFoundError:
        return [f"{SUMS}: missing"]
    manifest = load_manifest(bundle)
    if manifest.get("sha256sums") != hashlib.sha256(sums_bytes).hexdigest():
        return [f"{SUMS}: altered (its checksum differs from {MANIFEST})"]
    prefix = BUNDLE_DIR + "/"
    listed = {p: d for p, d in parse_sums(sums_bytes).items() if p.startswith(prefix)}
    present = {}
    for dirpath, dirnames, filenames in os.walk(bundle / BUNDLE_DIR):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        for name in filenames:
            rel = Path(dirpath, name).relative_to(bundle).as_posix()
            present[rel] = Path(dirpath, name)
    problems = [f"{p}: missing" for p in sorted(set(listed) - set(present))]
    problems += [f"{p}: extra file, not in {SUMS}" for p in sorted(set(present) - set(listed))]
    problems += [f"{p}: altered (checksum differs)" for p in sorted(set(listed) & set(present))
                 if present[p].is_file() and not present[p].is_symlink()
                 and _sha256(present[p]) != listed[p]]
    return problems


def bundle_set(bundle: Optional[Path]) -> Optional[Path]:
    """The bundle's hook set directory, or None when there is no bundle or it has none."""
    if bundle is None:
        return None
    d = Path(bundle) / BUNDLE_DIR
    return d if d.is_dir() else None


def checked_bundle_set(bundle: Path) -> HookSet:
    """The bundle's hook set, scanned and verified; InputError listing every problem."""
    directory = Path(bundle) / BUNDLE_DIR
    hookset, problems = scan(directory)
    problems = [f"{BUNDLE_DIR}/{p}" for p in problems] + verify_in_bundle(Path(bundle))
    raise_problems(problems, str(bundle), "the bundle is damaged or was not made by "
                   "satchel's builder; nothing was changed")
    return hookset


def plugin_source(bundle: Optional[Path], root: Optional[Path]) -> List[Path]:
    """Where this run's custom plugins come from: the bundle's hook set when the
    bundle carries one, else the copies earlier runs installed on the target."""
    if bundle_set(bundle) is not None:
        plugins = Path(str(bundle)) / BUNDLE_DIR / "plugins"
        return [plugins] if plugins.is_dir() else []
    if root is not None:
        installed = Path(root) / TARGET_PLUGINS.lstrip("/")
        return [installed] if installed.is_dir() else []
    return []


def plugin_dirs(bundle: Optional[Path], root: Optional[Path]) -> List[Path]:
    """plugin_source(), after checking the bundle's hook set (no code from a
    damaged bundle runs)."""
    if bundle is not None and bundle_set(bundle) is not None:
        checked_bundle_set(bundle)
    found = plugin_source(bundle, root)
    if found:
        # Importing must not write __pycache__ into the bundle (verify would call it
        # an extra file) nor into the target's copy (a re-run must change nothing).
        sys.dont_write_bytecode = True
    return found


def bundled_names(manifest: Dict[str, object]) -> List[str]:
    """Names of the packages in the manifest's repo section."""
    comps = manifest.get("components") or {}
    repo = comps.get("repo") if isinstance(comps, dict) else None
    pkgs = repo.get("packages") if isinstance(repo, dict) else None
    return sorted({str(p["name"]) for p in pkgs or [] if isinstance(p, dict) and "name" in p})
