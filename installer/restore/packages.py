"""The target side of a bundle's packages: plan, install, undo and audit with dnf/rpm.

dnf runs against `--installroot=ROOT` (also when ROOT is `/`) with the bundle's
own repo as its only repo (`--repofrompath` + `--repo`, system repos off): no
.repo file is written, so nothing is left pointing at a medium that will be
unplugged. The rpm database is the one EL uses, /var/lib/rpm: where this host's
rpm defaults elsewhere (Debian: ~/.rpmdb), dnf runs with a private HOME whose
.rpmmacros says so, and rpm is given `--dbpath`.

The plan is a dnf test transaction (`tsflags=test`) of the manifest's exact
NEVRAs: a requirement that neither the bundle nor the target provides is refused
before any change, with dnf's own words. dnf's cache and history of the plan go
to a scratch directory in the root's /var/lib/satchel that is removed afterwards;
only dnf's logs (/var/log/dnf*.log) are written.

Signatures: signed packages are checked against every key the bundle ships under
repo/keys/ (dnf imports them into the target's rpmdb, as `gpg-pubkey`), or, when
it ships none, against the keys the target already trusts. dnf imports keys at
its download step, which the test transaction runs too: the plan of a signed
bundle already adds its keys to the target (InstallPackages' undo removes them).
Unsigned packages are accepted only when the manifest's repo section says
"allow_unsigned": true.

Undo removes exactly the packages (and keys) this run added; an upgrade or a
downgrade cannot be undone offline (the old RPM is not in the bundle): it is
named for manual action.

Resuming: before dnf starts, the journal gets the rpmdb's package set as it was
and the planned upgrades and downgrades (`Journal.begin`). When a run is killed
while dnf runs, the next run's plan finds what the killed transaction finished
already installed and installs the rest; the element takes the package set
"before" from the journal, so the packages the killed run installed are recorded
(and undone on a rollback) as this step's, as after an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from installer.engine.fsutil import missing_dirs
from installer.engine.process import check_tool, run
from installer.engine.transaction import TransactionElement
from installer.errors import InputError, RefusedError, SatchelError, ToolError
from installer.restore import checkpoint

log = logging.getLogger("satchel.packages")

DBPATH = "/var/lib/rpm"
REPO_ID = "satchel"
REPO_DIR = "repo"
KEYS_DIR = "repo/keys"
SCRATCH_PARENT = "var/lib/satchel"  # the installer's state directory in the root
SCRATCH_PREFIX = ".dnf-"
# What dnf itself leaves in an installroot: logs, module config, history.
DNF_FOOTPRINT = ("var/log/dnf.log", "var/log/dnf.librepo.log", "var/log/dnf.rpm.log",
                 "var/log/hawkey.log", "var/log", "etc/dnf/modules.d", "etc/dnf",
                 "etc/dnf/vars", "var/lib/dnf", "var/cache/dnf", "var/cache", "var/lib",
                 "var/tmp", "var")


class Footprint:
    """Remembers which of some target paths do not exist yet, so that what a tool
    then creates there can be removed again: new files are deleted, new
    directories removed when empty (deepest first). Used by the plan (a dry run
    leaves nothing behind) and by undo (rpm -e leaves the unowned directories
    a package's files needed)."""

    def __init__(self, root: Path, paths: Sequence[str]) -> None:
        self.root = root
        self.missing = sorted({p.strip("/") for p in paths
                               if p.strip("/") and not os.path.lexists(root / p.strip("/"))},
                              key=lambda p: (-p.count("/"), p))

    def cleanup(self) -> None:
        for rel in self.missing:
            host = self.root / rel
            if host.is_dir() and not host.is_symlink():
                with contextlib.suppress(OSError):
                    host.rmdir()
            elif os.path.lexists(host):
                with contextlib.suppress(OSError):
                    host.unlink()


def _ancestors(paths: Sequence[str]) -> Set[str]:
    out: Set[str] = set()
    for p in paths:
        parts = p.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


# --- the manifest's packages -------------------------------------------------------


@dataclass(frozen=True)
class Pkg:
    name: str
    epoch: int
    version: str
    release: str
    arch: str
    signed: bool
    file: str = ""

    @property
    def nevra(self) -> str:
        """name-[epoch:]version-release.arch, epoch shown only when not 0 (rpm's %{NEVRA})."""
        e = f"{self.epoch}:" if self.epoch else ""
        return f"{self.name}-{e}{self.version}-{self.release}.{self.arch}"

    @property
    def spec(self) -> str:
        """The exact dnf spec: name-epoch:version-release.arch."""
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"

    @property
    def evr(self) -> Tuple[int, str, str]:
        return (self.epoch, self.version, self.release)


def repo_section(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """The manifest's repo component ({} when the bundle carries no packages)."""
    section = (manifest.get("components") or {}).get("repo") or {}
    if not isinstance(section, dict):
        raise InputError("manifest: components.repo is not an object")
    return section


def manifest_packages(manifest: Dict[str, Any]) -> List[Pkg]:
    out = []
    for i, p in enumerate(repo_section(manifest).get("packages") or []):
        try:
            out.append(Pkg(name=str(p["name"]), epoch=int(p.get("epoch") or 0),
                           version=str(p["version"]), release=str(p["release"]),
                           arch=str(p["arch"]), signed=bool(p.get("signed")),
                           file=str(p.get("file") or "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"manifest: components.repo.packages[{i}]: bad entry ({exc})") \
                from None
    return sorted(out, key=lambda p: p.nevra)


def _releasever(manifest: Dict[str, Any]) -> str:
    version = str((manifest.get("target") or {}).get("version") or "")
    if not version:
        raise InputError("manifest: target.version is missing (dnf needs --releasever)")
    return version


# --- rpm version comparison (rpmvercmp, for the plan's upgrade/downgrade) ----------

_SEGMENT = re.compile(r"~|\^|\d+|[A-Za-z]+")


def vercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp: -1, 0 or 1 (tilde sorts before anything, caret after)."""
    if a == b:
        return 0
    sa, sb = _segments(a), _segments(b)
    while True:
        x = sa.pop(0) if sa else None
        y = sb.pop(0) if sb else None
        if x is None and y is None:
            return 0
        if x == "~" or y == "~":
            if x != y:
                return -1 if x == "~" else 1
            continue
        if x == "^" or y == "^":
            if x is None:
                return -1
            if y is None:
                return 1
            if x != y:
                return 1 if x == "^" else -1
            continue
        if x is None:
            return -1
        if y is None:
            return 1
        xd, yd = x.isdigit(), y.isdigit()
        if xd != yd:
            return 1 if xd else -1
        if xd:
            xi, yi = int(x), int(y)
            if xi != yi:
                return 1 if xi > yi else -1
        elif x != y:
            return 1 if x > y else -1


def _segments(v: str) -> List[str]:
    return _SEGMENT.findall(v)


def evrcmp(a: Tuple[int, str, str], b: Tuple[int, str, str]) -> int:
    if a[0] != b[0]:
        return 1 if a[0] > b[0] else -1
    return vercmp(a[1], b[1]) or vercmp(a[2], b[2])


# --- running rpm and dnf ----------------------------------------------------------


@functools.cache
def _host_dbpath() -> str:
    check_tool("rpm", hint="install rpm")
    return run(["rpm", "--eval", "%_dbpath"]).stdout.strip()


def rpm_root(root: Path, args: Sequence[str], check: bool = True) -> Any:
    """`rpm --root ROOT --dbpath /var/lib/rpm ARGS...` (output captured as text)."""
    check_tool("rpm", hint="install rpm")
    return run(["rpm", "--root", str(root), "--dbpath", DBPATH, *args], check=check)


@dataclass(frozen=True)
class Installed:
    name: str
    evr: Tuple[int, str, str]
    arch: str
    nevra: str


def installed(root: Path) -> List[Installed]:
    """Every package in ROOT's rpmdb (none when it has no rpmdb yet)."""
    if not (root / DBPATH.lstrip("/")).is_dir():
        return []
    out = rpm_root(root, ["-qa", "--qf",
                          "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{NEVRA}\\n"])
    pkgs = []
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 6:
            pkgs.append(Installed(parts[0], (int(parts[1]), parts[2], parts[3]),
                                  parts[4], parts[5]))
    return sorted(pkgs, key=lambda p: p.nevra)


def _keys(bundle: Path) -> List[Path]:
    d = bundle / KEYS_DIR
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


def gpg_options(bundle: Path, manifest: Dict[str, Any]) -> List[str]:
    """dnf's GPG options for this bundle; RefusedError for unsigned packages that
    the manifest does not allow."""
    pkgs = manifest_packages(manifest)
    unsigned = [p.nevra for p in pkgs if not p.signed]
    if unsigned:
        if not repo_section(manifest).get("allow_unsigned"):
            raise RefusedError(
                f"unsigned packages in the bundle: {', '.join(unsigned)}",
                hint="the bundle's recipe must set packages.allow_unsigned = true "
                     "to install unsigned packages")
        return ["--nogpgcheck"]
    opts = [f"--setopt={REPO_ID}.gpgcheck=1"]
    keys = _keys(bundle)
    if keys:
        opts.append(f"--setopt={REPO_ID}.gpgkey=" + ",".join(k.resolve().as_uri() for k in keys))
    return opts


def _remove_stale_scratch(parent: Path) -> None:
    """Scratch directories of runs that were killed (their process is gone)."""
    if not parent.is_dir():
        return
    for p in parent.iterdir():
        pid = p.name[len(SCRATCH_PREFIX):].partition("-")[0]
        if p.name.startswith(SCRATCH_PREFIX) and pid.isdigit() \
                and not os.path.exists(f"/proc/{pid}") and not p.is_symlink():
            log.info("removing %s, left by an interrupted run", p)
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _scratch(root: Path) -> Iterator[str]:
    """A directory inside root for dnf's cache, the plan's history and the private
    HOME that gives rpm its dbpath; removed afterwards (and, if a run was killed,
    by the next one). Yields its path relative to root: dnf runs with root as its
    working directory.

    dnf 4 takes a --setopt'ed cachedir or persistdir as a host path for its repo
    cache and history, but writes expired_repos.json below the same path inside
    the installroot; a relative path, resolved from the root, is the same place
    both ways (an absolute one left directories in the host's /var/tmp)."""
    parent = root / SCRATCH_PARENT
    created = missing_dirs(parent)
    for d in created:
        d.mkdir(mode=0o700 if d == parent else 0o755)
    _remove_stale_scratch(parent)
    host = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=parent))
    try:
        yield str(host.relative_to(root))
    finally:
        shutil.rmtree(host, ignore_errors=True)
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()


def dnf(root: Path, bundle: Path, manifest: Dict[str, Any], args: Sequence[str],
        test: bool = False) -> Any:
    """Run dnf into root with the bundle's repo only; returns the CompletedProcess
    (never raises on dnf's exit code: the caller reads it)."""
    check_tool("dnf", hint="install dnf")
    repo = (bundle / REPO_DIR).resolve()
    if not (repo / "repodata" / "repomd.xml").is_file():
        raise InputError(f"{repo}: no repodata/repomd.xml: not the bundle's package repo")
    gpg = gpg_options(bundle, manifest)
    with _scratch(root) as scratch:
        env: Dict[str, str] = {}
        if _host_dbpath() != DBPATH:
            home = root / scratch / "home"
            home.mkdir(mode=0o700)
            (home / ".rpmmacros").write_text(f"%_dbpath {DBPATH}\n", encoding="utf-8")
            env["HOME"] = str(home)
        argv = [
            "dnf", f"--installroot={root}", f"--releasever={_releasever(manifest)}",
            "--setopt=reposdir=/nonexistent",
            f"--repofrompath={REPO_ID},{repo.as_uri()}", f"--repo={REPO_ID}",
            "--setopt=install_weak_deps=False", "--setopt=keepcache=False",
            f"--setopt=cachedir={scratch}/cache", *gpg,
        ]
        if test:  # the plan leaves no dnf history either
            argv += [f"--setopt=persistdir={scratch}/lib", "--setopt=tsflags=test"]
        argv += ["-y", *args]
        return run(argv, env=env or None, cwd=root, check=False)


def _dnf_problems(proc: Any) -> str:
    """dnf's explanation of a failure (stderr, else the end of stdout)."""
    lines = []
    for ln in (proc.stderr or "").splitlines():
        if ln.startswith("Problem repository:"):  # then dnf dumps the repo's config
            lines.append(ln)
            break
        if ln.strip() and "--skip-broken" not in ln:
            lines.append(ln)
    if not lines:
        lines = [ln for ln in (proc.stdout or "").splitlines() if ln.strip()][-3:]
    return "\n".join(lines) or f"dnf exit code {proc.returncode}"


# --- the plan -------------------------------------------------------------------------


@dataclass
class PackagePlan:
    install: List[str] = field(default_factory=list)  # NEVRAs
    upgrade: List[Tuple[str, str]] = field(default_factory=list)  # (new, installed)
    downgrade: List[Tuple[str, str]] = field(default_factory=list)  # (new, installed)
    installed: List[str] = field(default_factory=list)  # already there, exact NEVRA
    other: List[str] = field(default_factory=list)  # further dnf actions (removals...)
    specs: List[str] = field(default_factory=list)  # what to give `dnf install`

    @property
    def nothing_to_do(self) -> bool:
        return not (self.install or self.upgrade or self.downgrade or self.other)

    def lines(self) -> List[str]:
        """Human-readable plan, one action per line."""
        out = [f"install {n}" for n in self.install]
        out += [f"upgrade {old} -> {new}" for new, old in self.upgrade]
        out += [f"downgrade {old} -> {new}" for new, old in self.downgrade]
        out += [f"already installed {n}" for n in self.installed]
        out += list(self.other)
        return out

    def as_dict(self) -> Dict[str, Any]:
        return {"install": list(self.install),
                "upgrade": [{"nevra": n, "installed": o} for n, o in self.upgrade],
                "downgrade": [{"nevra": n, "installed": o} for n, o in self.downgrade],
                "installed": list(self.installed), "other": list(self.other)}


_SECTIONS = {"installing", "upgrading", "downgrading", "reinstalling", "removing",
             "installing dependencies", "installing weak dependencies",
             "removing dependent packages", "removing unused dependencies",
             "obsoleting", "skipping packages with conflicts",
             "skipping packages with broken dependencies", "installing group/module packages"}


def _table(stdout: str) -> Dict[str, List[str]]:
    """dnf's transaction table: {section: [package name.arch ...]}."""
    out: Dict[str, List[str]] = {}
    section = None
    for line in stdout.splitlines():
        head = line.strip().rstrip(":").lower()
        if line.endswith(":") and not line.startswith(" ") and head in _SECTIONS:
            section = head
            out.setdefault(section, [])
            continue
        if not line.startswith(" ") or not line.strip():
            if line.strip() and section and not line.startswith(" "):
                section = None
            continue
        if section:
            parts = line.split()
            if parts and parts[0] != "replacing" and len(parts) >= 2:
                out[section].append(f"{parts[0]}.{parts[1]}")
    return out


def plan(root: Path, bundle: Path, manifest: Dict[str, Any]) -> PackagePlan:
    """What installing the manifest's exact NEVRAs into root would do; RefusedError
    (dnf's words) when a requirement is met by neither the bundle nor the target."""
    root, bundle = Path(root), Path(bundle)
    pkgs = manifest_packages(manifest)
    result = PackagePlan()
    if not pkgs:
        return result
    gpg_options(bundle, manifest)  # refuse unsigned before anything runs
    have: Dict[Tuple[str, str], List[Installed]] = {}
    for i in installed(root):
        have.setdefault((i.name, i.arch), []).append(i)
    for p in pkgs:
        there = have.get((p.name, p.arch), [])
        if any(i.evr == p.evr for i in there):
            result.installed.append(p.nevra)
            continue
        result.specs.append(p.spec)
        if not there:
            result.install.append(p.nevra)
            continue
        newest = there[0]
        for i in there[1:]:
            if evrcmp(i.evr, newest.evr) > 0:
                newest = i
        if evrcmp(p.evr, newest.evr) > 0:
            result.upgrade.append((p.nevra, newest.nevra))
        else:
            result.downgrade.append((p.nevra, newest.nevra))
    if not result.specs:
        return result
    trace = Footprint(root, DNF_FOOTPRINT)
    try:
        proc = dnf(root, bundle, manifest, ["install", *result.specs], test=True)
    finally:
        trace.cleanup()
    if proc.returncode != 0:
        raise RefusedError(
            "the bundle's packages cannot be installed on this target:\n"
            + _dnf_problems(proc),
            hint="a requirement is met by neither the bundle nor the target: install "
                 "what provides it on the target first, or rebuild the bundle with it")
    expected = {f"{p.name}.{p.arch}" for p in pkgs}
    for section, names in sorted(_table(proc.stdout).items()):
        for n in names:
            if section in ("installing", "upgrading", "downgrading") and n in expected:
                continue
            result.other.append(f"{section} {n}")
    return result


def payload_sizes(root: Path, bundle: Path, manifest: Dict[str, Any]) -> List[Tuple[str, int]]:
    """(target path, size) of every file of the bundle's packages that are not
    installed in root with their exact NEVRA: what dnf will write (for the disk
    space check; read from the RPM headers, no dnf needed)."""
    pkgs = manifest_packages(manifest)
    if not pkgs:
        return []
    have = {i.nevra for i in installed(Path(root))}
    rpms = [str(Path(bundle) / p.file) for p in pkgs if p.nevra not in have and p.file]
    if not rpms:
        return []
    check_tool("rpm", hint="install rpm")
    out = run(["rpm", "-qp", "--nosignature", "--nodigest", "--qf",
               "[%{FILENAMES}\\t%{FILESIZES}\\n]", *rpms])
    sizes = []
    for line in out.stdout.splitlines():
        path, _, size = line.rpartition("\t")
        if path.startswith("/") and size.isdigit():
            sizes.append((path, int(size)))
    return sizes


# --- the transaction element ----------------------------------------------------------


class InstallPackages(TransactionElement):
    """Install the manifest's exact NEVRAs into the transaction's root.

    prepare: the plan (a refused plan changes nothing); commit: `dnf install`;
    undo: `rpm -e --nodeps` of exactly what this run added (packages and imported
    keys); upgrades and downgrades are reported for manual action.
    """

    def __init__(self, bundle: Path, manifest: Dict[str, Any],
                 step_id: Optional[str] = "packages",
                 planned: Optional[Tuple[Set[str], PackagePlan]] = None) -> None:
        self.bundle = Path(bundle)
        self.manifest = manifest
        self.step_id = step_id
        # The validation's plan and the rpmdb it was made against: reused when the
        # rpmdb is still the same (saves a second dnf test transaction).
        self.planned = planned
        self.plan: Optional[PackagePlan] = None
        self.before: Set[str] = set()
        self.added: List[str] = []
        self.changed: List[Tuple[str, str, str]] = []  # (how, new, old)
        self.ran = False
        self.earlier: Optional[Dict[str, Any]] = None  # an interrupted attempt's entry

    def describe(self) -> str:
        n = len(manifest_packages(self.manifest))
        return f"install {n} package(s) from the bundle's repo"

    def prepare(self) -> None:
        root = self.txn.root
        # Before the plan: a plan of signed packages imports the bundle's keys.
        self.before = {i.nevra for i in installed(root)}
        if self.planned is not None and self.planned[0] == self.before:
            self.plan = self.planned[1]
        else:
            self.plan = plan(root, self.bundle, self.manifest)
        started = self.txn.journal.started(self.step_id) if self.step_id else None
        if isinstance(started, dict):  # a run killed while dnf ran: what it started from
            self.earlier = started
            self.before = set(started.get("before", []))
            for key, pairs in (("upgrade", self.plan.upgrade),
                               ("downgrade", self.plan.downgrade)):
                for new, old in started.get(key, []):
                    if all(new != n for n, _ in pairs):
                        pairs.append((new, old))
            log.info("packages: resuming a dnf transaction that was interrupted")
        self.footprint = Footprint(root, [*DNF_FOOTPRINT, *self._new_dirs()])
        if self.plan.nothing_to_do:
            log.info("packages: nothing to do (%d already installed)",
                     len(self.plan.installed))
        else:
            for line in self.plan.lines():
                log.info("packages: %s", line)

    def commit(self) -> None:
        assert self.plan is not None
        self.ran = True
        if self.plan.nothing_to_do:
            self._note_changes()  # keys the plan imported, if any
            return
        if self.step_id and self.earlier is None:
            self.txn.journal.begin(self.step_id, {
                "before": sorted(self.before),
                "upgrade": [list(p) for p in self.plan.upgrade],
                "downgrade": [list(p) for p in self.plan.downgrade]})
        checkpoint.reached("packages.dnf")
        proc = dnf(self.txn.root, self.bundle, self.manifest, ["install", *self.plan.specs])
        now = self._note_changes()
        if proc.returncode != 0:
            raise ToolError(f"dnf install into {self.txn.root} failed with exit code "
                            f"{proc.returncode}:\n{_dnf_problems(proc)}")
        want = {p.nevra for p in manifest_packages(self.manifest)}
        missing = sorted(want - now)
        if missing:
            raise ToolError(f"dnf finished but these are not installed: {', '.join(missing)}")

    def _new_dirs(self) -> Set[str]:
        """The directories the files of the packages to install need."""
        assert self.plan is not None
        files = {p.nevra: p.file for p in manifest_packages(self.manifest)}
        rpms = [str(self.bundle / files[n]) for n in self.plan.install if files.get(n)]
        if not rpms:
            return set()
        out = run(["rpm", "-qlp", "--nosignature", "--nodigest", *rpms], check=False)
        return _ancestors([ln for ln in (out.stdout or "").splitlines()
                           if ln.startswith("/")])

    def _note_changes(self) -> Set[str]:
        """What dnf added or changed; returns the NEVRAs installed now."""
        assert self.plan is not None
        now = {i.nevra for i in installed(self.txn.root)}
        self.added = sorted(now - self.before)
        self.changed = [("upgraded", n, o) for n, o in self.plan.upgrade if n in now] + \
            [("downgraded", n, o) for n, o in self.plan.downgrade if n in now]
        return now

    def _remove_added(self) -> None:
        gone = set(self.before)
        fresh = [n for n in self.added if n not in gone and
                 not any(n == new for _, new, _ in self.changed)]
        if fresh:
            rpm_root(self.txn.root, ["-e", "--nodeps", *fresh])
        self.added = []
        footprint = getattr(self, "footprint", None)
        if footprint is not None and not self.changed:
            footprint.cleanup()

    def abort(self) -> None:
        if self.ran:
            self._note_changes()
            self._remove_added()
            self._forget_attempt()
            if self.changed:
                log.error("packages changed by the failed install need manual action: %s",
                          "; ".join(f"{n} ({h} from {o})" for h, n, o in self.changed))

    def _forget_attempt(self) -> None:
        """What this step (and an interrupted attempt of it) added is removed again."""
        if self.step_id:
            self.txn.journal.abandon(self.step_id)

    def undo(self) -> None:
        if not self.ran:
            return
        self._remove_added()
        self._forget_attempt()
        if self.changed:
            raise SatchelError(
                "cannot undo offline (the previous RPMs are not in the bundle): "
                + "; ".join(f"{n} was {h} from {o}, reinstall {o}" for h, n, o in self.changed))

    def records(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        by_nevra = {p.nevra: p for p in manifest_packages(self.manifest)}
        changed = {n: (h, o) for h, n, o in self.changed}
        for nevra in sorted(set(self.added) | set(changed)):
            p = by_nevra.get(nevra)
            how, old = changed.get(nevra, ("installed", None))
            rec: Dict[str, Any] = {"kind": "package",
                                   "name": p.name if p else nevra, "nevra": nevra,
                                   "how": how}
            if old:
                rec["previous"] = old
            out.append(rec)
        return out


# --- audit -----------------------------------------------------------------------------


def audit(root: Path, nevras: Sequence[str]) -> List[str]:
    """`rpm -V` of the given installed packages: its raw problem lines (a changed
    %config file after a file-set restore is expected: the caller decides)."""
    if not nevras:
        return []
    proc = rpm_root(Path(root), ["-V", *nevras], check=False)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0 and not lines:
        raise ToolError(f"rpm -V failed with exit code {proc.returncode}")
    return lines
