"""repo/: the selected RPMs, their dependency closure, and createrepo_c metadata.

Reads the header of every *.rpm under the recipe's source directories (a local
repo is read the same way: its repodata is ignored), selects `packages.include`,
and pulls in whatever they require until every requirement is met by a package in
the bundle or by the base the target distro provides (`packages.base`: names and
capabilities, plus everything that base packages found in the sources provide).
Base packages are never bundled. When several RPMs provide one name, the highest
EVR wins (one version per name). Every unmet requirement is reported at once;
rpmlib() requirements are skipped, and rich dependencies `(a or b)` are not
checked: they are logged and listed under "unchecked" in the manifest.

The metadata (primary, filelists, other; gzip, no sqlite, which EL8+ dnf does not
need) is written with createrepo_c's Python API, with its timestamps and revision
set to the source date, so it is byte-reproducible.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import createrepo_c as cr
import rpm

from bundler.components import BuildContext
from installer.errors import InputError

log = logging.getLogger("satchel")

REPO = "repo"
SIGNATURE_TAGS = ("RPMTAG_RSAHEADER", "RPMTAG_DSAHEADER", "RPMTAG_SIGPGP",
                  "RPMTAG_SIGGPG", "RPMTAG_OPENPGP")

Dep = tuple[str, int, str]  # name, sense flags, EVR


@dataclass(frozen=True, eq=False)
class Rpm:
    path: Path
    name: str
    epoch: Optional[int]
    version: str
    release: str
    arch: str
    license: str
    sourcerpm: str
    signed: bool
    provides: tuple[Dep, ...]
    requires: tuple[Dep, ...]
    files: frozenset[str]

    @property
    def nevra(self) -> str:
        e = f"{self.epoch}:" if self.epoch else ""
        return f"{self.name}-{e}{self.version}-{self.release}.{self.arch}"

    @property
    def evr(self) -> tuple[str, str, str]:
        return (str(self.epoch or 0), self.version, self.release)

    def provides_dep(self, req: Dep) -> bool:
        """Does this package satisfy the requirement (a Provides, or a file)?"""
        name = req[0]
        if name.startswith("/") and name in self.files:
            return True
        want = rpm.ds(req, rpm.RPMTAG_REQUIRENAME)
        return any(p[0] == name and rpm.ds(p, rpm.RPMTAG_PROVIDENAME).Compare(want)
                   for p in self.provides)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _deps(hdr: Any, tag: int) -> tuple[Dep, ...]:
    # Keep only the comparison and rpmlib bits: Requires(post) and an auto-found
    # duplicate of an explicit Requires are the same requirement here.
    mask = rpm.RPMSENSE_LESS | rpm.RPMSENSE_GREATER | rpm.RPMSENSE_EQUAL | rpm.RPMSENSE_RPMLIB
    return tuple(sorted({(d.N(), d.Flags() & mask, d.EVR()) for d in rpm.ds(hdr, tag)}))


def read_header(ts: Any, path: Path) -> Any:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    try:
        return ts.hdrFromFdno(fd)
    except rpm.error as e:
        raise InputError(f"{path}: not a readable RPM: {e}") from None
    finally:
        os.close(fd)


def read_rpm(ts: Any, path: Path) -> Optional[Rpm]:
    """The facts of one binary RPM; None for a source RPM."""
    hdr = read_header(ts, path)
    if hdr[rpm.RPMTAG_SOURCEPACKAGE] or not hdr[rpm.RPMTAG_SOURCERPM]:
        return None
    return rpm_from_header(hdr, path)


def rpm_from_header(hdr: Any, path: Path) -> Rpm:
    """The facts of a binary package header (from a file, or from an rpmdb)."""
    epoch = hdr[rpm.RPMTAG_EPOCH]
    return Rpm(
        path=path,
        name=_text(hdr[rpm.RPMTAG_NAME]),
        epoch=int(epoch) if epoch is not None else None,
        version=_text(hdr[rpm.RPMTAG_VERSION]),
        release=_text(hdr[rpm.RPMTAG_RELEASE]),
        arch=_text(hdr[rpm.RPMTAG_ARCH]),
        license=_text(hdr[rpm.RPMTAG_LICENSE]),
        sourcerpm=_text(hdr[rpm.RPMTAG_SOURCERPM]),
        signed=any(hdr[getattr(rpm, t)] for t in SIGNATURE_TAGS if hasattr(rpm, t)),
        provides=_deps(hdr, rpm.RPMTAG_PROVIDENAME),
        requires=_deps(hdr, rpm.RPMTAG_REQUIRENAME),
        files=frozenset(_text(f) for f in hdr[rpm.RPMTAG_FILENAMES]),
    )


def dep_str(dep: Dep) -> str:
    return rpm.ds(dep, rpm.RPMTAG_REQUIRENAME).DNEVR()[2:]


def _newest_first(pkgs: Iterable[Rpm]) -> list[Rpm]:
    out: list[Rpm] = []
    for p in sorted(pkgs, key=lambda p: (p.name, p.arch, str(p.path))):
        i = 0
        while i < len(out) and rpm.labelCompare(out[i].evr, p.evr) >= 0:
            i += 1
        out.insert(i, p)
    return out


def _matching(pattern: str, names: Collection[str]) -> list[str]:
    """The names `pattern` matches, sorted; a plain name is looked up, not matched
    against every name (a snapshot includes each of its packages by name)."""
    if not any(c in pattern for c in "*?["):
        return [pattern] if pattern in names else []
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


@dataclass
class Closure:
    packages: list[Rpm]  # what goes into the bundle
    base_packages: list[Rpm]  # base RPMs found in the sources (never bundled)
    requires_base: dict[str, list[str]]  # nevra -> requirements the base meets
    unchecked: dict[str, list[str]]  # nevra -> rich dependencies not checked


def resolve(rpms: Iterable[Rpm], include: Iterable[str], base: Iterable[str],
            arch: str = "noarch") -> Closure:
    """Select `include` and its Requires closure; raise InputError on what is unmet."""
    base = tuple(base)
    usable = [p for p in rpms if p.arch in (arch, "noarch")]
    # One RPM per NEVRA (the same file may sit in two source dirs).
    unique: dict[str, Rpm] = {}
    for p in sorted(usable, key=lambda p: str(p.path)):
        unique.setdefault(p.nevra, p)
    by_name: dict[str, list[Rpm]] = defaultdict(list)
    for p in unique.values():
        by_name[p.name].append(p)
    base_pkgs: list[Rpm] = []
    for name in sorted(by_name):
        by_name[name] = _newest_first(by_name[name])
        if any(fnmatch.fnmatchcase(name, b) for b in base):
            base_pkgs.append(by_name.pop(name)[0])
    # capability or file -> the packages that may provide it (versions checked later)
    index: dict[str, list[Rpm]] = defaultdict(list)
    for name in sorted(by_name):
        for c in by_name[name]:
            for cap in sorted({d[0] for d in c.provides} | c.files):
                index[cap].append(c)
    base_caps = set(base)

    def base_meets(req: Dep) -> bool:
        return req[0] in base_caps or any(b.provides_dep(req) for b in base_pkgs)

    selected: dict[str, Rpm] = {}
    problems: list[str] = []
    for pattern in include:
        names = _matching(pattern, by_name)
        if not names:
            in_base = any(fnmatch.fnmatchcase(b.name, pattern) for b in base_pkgs)
            problems.append(f"packages.include: {pattern!r} matches no package in the sources"
                            + (" (it is part of the declared base)" if in_base else ""))
        for n in names:
            selected.setdefault(n, by_name[n][0])
    requires_base: dict[str, list[str]] = {}
    unchecked: dict[str, list[str]] = {}
    queue = sorted(selected)
    while queue:
        pkg = selected[queue.pop(0)]
        for req in pkg.requires:
            name, flags = req[0], req[1]
            if name.startswith("rpmlib(") or flags & rpm.RPMSENSE_RPMLIB:
                continue
            if name.startswith("("):  # a rich dependency: (a or b), (a if b), ...
                unchecked.setdefault(pkg.nevra, []).append(dep_str(req))
                continue
            candidates = [c for c in index.get(name, ()) if c.provides_dep(req)]
            if any(selected.get(c.name) is c for c in candidates):
                continue
            if base_meets(req):
                requires_base.setdefault(pkg.nevra, []).append(dep_str(req))
                continue
            providers = [c for c in candidates if c.name not in selected]
            if not providers:
                problems.append(f"{pkg.nevra} requires {dep_str(req)}, which neither the "
                                "sources nor the declared base provide")
                continue
            # Prefer the package named like the requirement, then the newest.
            named = [c for c in providers if c.name == name]
            choice = named[0] if named else providers[0]
            selected[choice.name] = choice
            queue.append(choice.name)
    for nevra, deps in sorted(unchecked.items()):
        log.warning("%s: rich dependencies not checked: %s", nevra, ", ".join(deps))
    if problems:
        raise InputError("\n".join(problems) if len(problems) > 1 else problems[0],
                         hint="add the missing packages to the sources, or declare "
                              "what the target provides in [packages] base")
    return Closure(sorted(selected.values(), key=lambda p: p.nevra),
                   sorted(base_pkgs, key=lambda p: p.nevra), requires_base, unchecked)


# --- the component ----------------------------------------------------------


def check(ctx: BuildContext) -> None:
    pkgs = ctx.recipe.packages
    missing = [str(s) for s in pkgs.sources if not s.is_dir()]
    if missing:
        raise InputError(f"package source directory not found: {', '.join(missing)}",
                         hint="check [packages] sources in the recipe")


def build(ctx: BuildContext) -> Optional[dict[str, Any]]:
    pkgs = ctx.recipe.packages
    if not pkgs.include:
        return None
    check(ctx)
    # RPMs built from the recipe's specs are already among the sources: the
    # pipeline builds them first (bundler.build.build_spec_packages).
    paths = sorted({p for s in pkgs.sources for p in s.rglob("*.rpm") if p.is_file()})
    return _build(ctx, _read_all(ctx, paths), pkgs.include)


def build_from(ctx: BuildContext, rpm_paths: Sequence[Path],
               base_rpms: Sequence[Rpm] = ()) -> Optional[dict[str, Any]]:
    """repo/ from exactly these RPM files (a snapshot's pre-selected packages).

    The same closure check runs: every requirement must be met by these RPMs, by
    `base_rpms` (e.g. the source root's installed base packages, from its rpmdb)
    or by the recipe's declared base.
    """
    if not rpm_paths:
        return None
    found = _read_all(ctx, sorted(set(rpm_paths)))
    include = sorted({r.name for r in found})
    base = ctx.recipe.packages.base
    # Only packages the recipe declares as base may stand in for the base.
    declared = [b for b in base_rpms if any(fnmatch.fnmatchcase(b.name, p) for p in base)]
    return _build(ctx, [*found, *declared], include)


def _read_all(ctx: BuildContext, paths: Sequence[Path]) -> list[Rpm]:
    ts = rpm.TransactionSet("/", rpm._RPMVSF_NOSIGNATURES)
    found: list[Rpm] = []
    with ctx.progress.step("reading package headers", total=len(paths)) as pr:
        for path in paths:
            r = read_rpm(ts, path)
            if r is not None:
                found.append(r)
            pr.advance(item=path.name)
    return found


def _build(ctx: BuildContext, found: list[Rpm], include: Iterable[str]) -> dict[str, Any]:
    pkgs = ctx.recipe.packages
    with ctx.progress.step("resolving dependencies"):
        closure = resolve(found, include, pkgs.base, ctx.recipe.bundle.arch)
    entries = []
    with ctx.progress.step("copying packages", total=len(closure.packages)) as pr:
        for p in closure.packages:
            rel = f"{REPO}/Packages/{p.name}-{p.version}-{p.release}.{p.arch}.rpm"
            entry = ctx.staging.copy_in(p.path, rel)
            os.utime(ctx.staging.root / rel, (ctx.source_date_epoch, ctx.source_date_epoch))
            entries.append((p, entry))
            pr.advance(item=p.nevra)
    with ctx.progress.step("writing repository metadata"):
        for rel in write_repodata(ctx.staging.root / REPO, [e.path for _, e in entries],
                                  ctx.source_date_epoch):
            ctx.staging.adopt(f"{REPO}/{rel}")
    return {
        "packages": [{
            "name": p.name, "epoch": p.epoch or 0, "version": p.version,
            "release": p.release, "arch": p.arch, "nevra": p.nevra, "license": p.license,
            "sourcerpm": p.sourcerpm, "sha256": e.sha256, "size": e.size, "file": e.path,
            "signed": p.signed, "requires_base": closure.requires_base.get(p.nevra, []),
            "unchecked": closure.unchecked.get(p.nevra, []),
        } for p, e in entries],
        "base": sorted(pkgs.base),
        "allow_unsigned": bool(getattr(pkgs, "allow_unsigned", False)),
        "base_packages": [p.nevra for p in closure.base_packages],
        "createrepo_c": cr.VERSION,
    }


def write_repodata(repo: Path, hrefs: list[str], source_date_epoch: int) -> list[str]:
    """Write repo/repodata for the RPMs at `hrefs` (bundle-relative); return its files.

    Timestamps (file times in primary.xml, record times, revision) are the source
    date, and the gzip streams carry no time, so the output is reproducible.
    """
    repodata = repo / "repodata"
    repodata.mkdir(parents=True, exist_ok=True)
    names = {"primary": cr.PrimaryXmlFile, "filelists": cr.FilelistsXmlFile,
             "other": cr.OtherXmlFile}
    paths = {k: repodata / f"{k}.xml.gz" for k in names}
    xml = {k: cls(str(paths[k]), cr.GZ_COMPRESSION) for k, cls in names.items()}
    for f in xml.values():
        f.set_num_of_pkgs(len(hrefs))
    for href in sorted(hrefs):
        rel = href.split("/", 1)[1] if href.startswith(f"{REPO}/") else href
        pkg = cr.package_from_rpm(str(repo / rel), cr.SHA256, rel, None, 10)
        pkg.time_file = source_date_epoch
        for f in xml.values():
            f.add_pkg(pkg)
    for f in xml.values():
        f.close()
    repomd = cr.Repomd()
    repomd.set_revision(str(source_date_epoch))
    for k in names:
        os.utime(paths[k], (source_date_epoch, source_date_epoch))
        rec = cr.RepomdRecord(k, str(paths[k]))
        rec.fill(cr.SHA256)
        rec.set_timestamp(source_date_epoch)
        rec.rename_file()
        repomd.set_record(rec)
    repomd.sort_records()
    (repodata / "repomd.xml").write_text(repomd.xml_dump(), encoding="utf-8")
    os.utime(repodata / "repomd.xml", (source_date_epoch, source_date_epoch))
    return sorted(f"repodata/{p.name}" for p in repodata.iterdir())
