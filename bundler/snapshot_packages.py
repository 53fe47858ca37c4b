"""Snapshot: the packages of a live node, read from its rpmdb, matched to RPM files.

`installed_packages` reads `<source_root>/var/lib/rpm` with the rpm bindings.
`select` applies the recipe (`packages.include` names/globs, or
`packages.everything`: all but the declared base `packages.base`). `find_rpms`
looks for the RPM file of each selected NEVRA under `packages.sources`
(recursively: local repos, dnf/yum caches, an otherpkgs folder) and accepts a file
only when its header digest (SHA256HEADER, else SHA1HEADER) is the installed
header's: the same build, not just the same name and version.
`changed_config_files` compares the installed headers' file data (digest, size,
mode, symlink target) with the files under source_root, like `rpm -V`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import rpm

from bundler.components.rpm_repo import Rpm, read_header, rpm_from_header
from installer.bundle import file_digest
from installer.errors import InputError

log = logging.getLogger("satchel")

DBPATH = "/var/lib/rpm"
# rpm's PGPHASHALGO numbers -> hashlib names (RPMTAG_FILEDIGESTALGO)
DIGEST_ALGOS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224"}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


@dataclass(frozen=True, eq=False)
class InstalledPkg:
    name: str
    epoch: Optional[int]
    version: str
    release: str
    arch: str
    sha256header: str
    sha1header: str
    header: Any = field(repr=False)

    @property
    def nevra(self) -> str:
        e = f"{self.epoch}:" if self.epoch else ""
        return f"{self.name}-{e}{self.version}-{self.release}.{self.arch}"

    def as_rpm(self) -> Rpm:
        """rpm_repo's view (provides, requires, files) of this installed package."""
        return rpm_from_header(self.header, Path(DBPATH) / self.nevra)


def header_digests(hdr: Any) -> tuple[str, str]:
    return (_text(hdr[rpm.RPMTAG_SHA256HEADER]), _text(hdr[rpm.RPMTAG_SHA1HEADER]))


def installed_packages(source_root: Path) -> list[InstalledPkg]:
    """Every package in `<source_root>/var/lib/rpm` (gpg-pubkey entries left out)."""
    source_root = Path(source_root)
    if not (source_root / DBPATH.lstrip("/")).is_dir():
        raise InputError(f"{source_root}: no rpm database at {DBPATH}",
                         hint="is --source-root the root of an installed system?")
    rpm.addMacro("_dbpath", DBPATH)
    try:
        ts = rpm.TransactionSet(str(source_root))
        ts.openDB()
        out = []
        for hdr in ts.dbMatch():
            name = _text(hdr[rpm.RPMTAG_NAME])
            if name == "gpg-pubkey":
                continue
            epoch = hdr[rpm.RPMTAG_EPOCH]
            s256, s1 = header_digests(hdr)
            out.append(InstalledPkg(
                name=name, epoch=int(epoch) if epoch is not None else None,
                version=_text(hdr[rpm.RPMTAG_VERSION]), release=_text(hdr[rpm.RPMTAG_RELEASE]),
                arch=_text(hdr[rpm.RPMTAG_ARCH]), sha256header=s256, sha1header=s1,
                header=hdr))
        ts.closeDB()
    except rpm.error as e:
        raise InputError(f"{source_root}{DBPATH}: cannot read the rpm database: {e}") \
            from None
    finally:
        rpm.delMacro("_dbpath")
    return sorted(out, key=lambda p: p.nevra)


def select(pkgs: Iterable[InstalledPkg], include: Sequence[str] = (),
           everything: bool = False, base: Sequence[str] = ()) -> list[InstalledPkg]:
    """The packages the recipe wants: `include` names/globs, or with `everything`
    all that match no `base` name/pattern. An include matching nothing is an error."""
    pkgs = list(pkgs)

    def is_base(p: InstalledPkg) -> bool:
        return any(fnmatch.fnmatchcase(p.name, b) for b in base)

    if everything:
        return [p for p in pkgs if not is_base(p)]
    unmatched = [pat for pat in include
                 if not any(fnmatch.fnmatchcase(p.name, pat) for p in pkgs)]
    if unmatched:
        raise InputError("packages.include: not installed on the source: "
                         + ", ".join(repr(u) for u in unmatched))
    return [p for p in pkgs if any(fnmatch.fnmatchcase(p.name, pat) for pat in include)]


def base_packages(pkgs: Iterable[InstalledPkg], base: Sequence[str]) -> list[Rpm]:
    """The installed packages the recipe declares as base, for the closure check."""
    return [p.as_rpm() for p in pkgs if any(fnmatch.fnmatchcase(p.name, b) for b in base)]


@dataclass
class Found:
    rpms: dict[str, Path]  # nevra -> the matching RPM file
    missing: list[str]  # NEVRAs without a file (only with allow_missing)
    warnings: list[str]  # for the manifest


def _nevra_of(hdr: Any) -> str:
    epoch = hdr[rpm.RPMTAG_EPOCH]
    e = f"{int(epoch)}:" if epoch else ""
    return (f"{_text(hdr[rpm.RPMTAG_NAME])}-{e}{_text(hdr[rpm.RPMTAG_VERSION])}-"
            f"{_text(hdr[rpm.RPMTAG_RELEASE])}.{_text(hdr[rpm.RPMTAG_ARCH])}")


def find_rpms(selected: Sequence[InstalledPkg], sources: Sequence[Path],
              allow_missing: bool = False) -> Found:
    """The RPM file of each selected package's exact build, found under `sources`."""
    wanted = {p.nevra: p for p in selected}
    ts = rpm.TransactionSet("/", rpm._RPMVSF_NOSIGNATURES)
    candidates: dict[str, list[tuple[Path, Any]]] = {}
    unreadable: list[str] = []
    for src in sources:
        if not Path(src).is_dir():
            raise InputError(f"package source directory not found: {src}",
                             hint="check [packages] sources in the recipe")
    paths = sorted({p for s in sources for p in Path(s).rglob("*.rpm") if p.is_file()})
    for path in paths:
        try:
            hdr = read_header(ts, path)
        except InputError as e:
            unreadable.append(str(e))
            continue
        if hdr[rpm.RPMTAG_SOURCEPACKAGE]:
            continue
        nevra = _nevra_of(hdr)
        if nevra in wanted:
            candidates.setdefault(nevra, []).append((path, hdr))
    found: dict[str, Path] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for nevra, pkg in sorted(wanted.items()):
        cands = candidates.get(nevra, [])
        if not cands:
            missing.append(nevra)
            continue
        for path, hdr in cands:
            s256, s1 = header_digests(hdr)
            same = (s256 == pkg.sha256header) if s256 and pkg.sha256header else \
                bool(s1) and s1 == pkg.sha1header
            if same:
                found[nevra] = path
                break
        else:
            files = ", ".join(str(p) for p, _ in cands)
            mismatched.append(f"{nevra}: {files} is a different build (its header digest "
                              "does not match the installed package's)")
    for u in unreadable:
        log.warning("%s", u)
    if mismatched:
        raise InputError("\n".join(mismatched) if len(mismatched) > 1 else mismatched[0],
                         hint="put the RPM of the installed build in a source directory")
    warnings: list[str] = []
    if missing:
        where = ", ".join(str(s) for s in sources) or "(no source directories)"
        if not allow_missing:
            raise InputError(
                f"no RPM file found for {len(missing)} installed package(s): "
                f"{', '.join(missing)} (searched {where}, recursively)",
                hint="add the directories holding them to [packages] sources "
                     "(dnf/yum caches, local repos), or pass --allow-missing")
        warnings = [f"no RPM file for installed package {n} (searched {where})"
                    for n in missing]
        for w in warnings:
            log.warning("%s", w)
    return Found(found, missing, warnings)



def _differs(host: str, st: os.stat_result, f: Any, algo: str) -> bool:
    if stat.S_IFMT(st.st_mode) != stat.S_IFMT(f.mode):
        return True
    if stat.S_ISDIR(st.st_mode):
        return False  # a directory's content is other files' business
    if stat.S_ISLNK(st.st_mode):
        return bool(os.readlink(host) != f.linkto)
    if stat.S_IMODE(st.st_mode) != stat.S_IMODE(f.mode):
        return True
    return stat.S_ISREG(st.st_mode) and (
        st.st_size != f.size or file_digest(Path(host), algo) != f.digest)


def changed_files(source_root: Path, pkg: InstalledPkg) -> list[str]:
    """Files of one installed package whose content, size, mode or symlink target
    differ from the installed header (ghost and missing files left out)."""
    hdr = pkg.header
    algo = DIGEST_ALGOS.get(int(hdr[rpm.RPMTAG_FILEDIGESTALGO] or 1), "md5")
    root = os.fspath(source_root)
    out = []
    for f in rpm.files(hdr):
        if f.fflags & rpm.RPMFILE_GHOST:
            continue
        host = os.path.join(root, f.name.lstrip("/"))  # plain strings: every file
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            log.info("%s: %s is missing on the source", pkg.nevra, f.name)
            continue
        if _differs(host, st, f, algo):
            out.append(f.name)
    return out


def changed_config_files(source_root: Path, pkgs: Iterable[InstalledPkg]) -> list[str]:
    """Target paths of the packages' files that changed since install (%config files
    and any other), sorted and unique."""
    out: set[str] = set()
    for p in pkgs:
        out.update(changed_files(source_root, p))
    return sorted(out)
