"""Build binary RPMs from spec files (the demo appliance's payload/demo/*.spec).

The output is reproducible: SOURCE_DATE_EPOCH clamps file mtimes and sets the
build time, and the build host is fixed, so the same spec and epoch give the same
bytes. Because the demo and the tests rebuild often, each spec's RPMs are cached in
`outdir` with a stamp keyed by the sha256 of the spec, of the files beside it (its
SourceN files) and of the epoch: an unchanged spec is not built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from bundler.run import check_tool, run
from installer.errors import InputError, ToolError

STAMP_FORMAT = 1

# Reproducibility and isolation: the same bytes on every machine, and nothing read
# from the build host's rpm database (Debian's rpm would look in ~/.rpmdb).
REPRODUCIBLE_MACROS = {
    "_buildhost": "satchel",
    "clamp_mtime_to_source_date_epoch": "1",
    "use_source_date_epoch_as_buildtime": "1",
    "source_date_epoch_from_changelog": "0",
    "_build_id_links": "none",
    "_binary_payload": "w9.gzdio",  # readable by every rpm from EL7 on
    "_dbpath": "/var/lib/rpm",
}


def spec_key(spec: Path, source_date_epoch: int) -> str:
    """The cache key of a spec: its text, the files beside it, and the epoch."""
    h = hashlib.sha256()
    h.update(f"satchel-rpmbuild {STAMP_FORMAT} {source_date_epoch}\n".encode())
    h.update(hashlib.sha256(spec.read_bytes()).hexdigest().encode() + b"\n")
    for f in sorted(spec.parent.iterdir()):
        if f.is_file() and f.suffix != ".spec":
            h.update(f"{f.name} {hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


def _stamp_path(outdir: Path, spec: Path) -> Path:
    return outdir / f".rpmbuild-{spec.stem}.json"


def _cached(outdir: Path, spec: Path, key: str) -> Optional[list[Path]]:
    try:
        stamp = json.loads(_stamp_path(outdir, spec).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key:
        return None
    rpms = [outdir / name for name in stamp.get("rpms", [])]
    if not rpms or not all(p.is_file() for p in rpms):
        return None
    return rpms


def _forget(outdir: Path, spec: Path) -> None:
    """Remove the RPMs an earlier build of this spec left in outdir."""
    stamp_path = _stamp_path(outdir, spec)
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for name in stamp.get("rpms", []) if isinstance(stamp, dict) else []:
        if "/" not in name:
            (outdir / name).unlink(missing_ok=True)
    stamp_path.unlink(missing_ok=True)


def _rpmbuild(spec: Path, topdir: Path, source_date_epoch: int) -> list[Path]:
    defines = {
        **REPRODUCIBLE_MACROS,
        "_topdir": str(topdir),
        "_tmppath": str(topdir / "tmp"),
        "_sourcedir": str(spec.parent.resolve()),
    }
    (topdir / "tmp").mkdir(parents=True, exist_ok=True)
    argv: list[str] = ["rpmbuild", "-bb", "--nodeps", "--quiet"]
    for name, value in defines.items():
        argv += ["--define", f"{name} {value}"]
    argv.append(str(spec.resolve()))
    try:
        run(argv, env={"SOURCE_DATE_EPOCH": str(source_date_epoch), "TZ": "UTC"},
            cwd=topdir)
    except ToolError as e:
        raise ToolError(f"rpmbuild of {spec} failed: {e.message}",
                        hint="run rpmbuild -bb on the spec to see its full output") from e
    rpms = sorted((topdir / "RPMS").rglob("*.rpm"))
    if not rpms:
        raise ToolError(f"rpmbuild of {spec} produced no binary RPM",
                        hint="does the spec have a %files section?")
    return rpms


def build_specs(specs: Sequence[Path], outdir: Path, source_date_epoch: int) -> list[Path]:
    """Build each spec's binary RPMs into outdir; return their paths (sorted).

    A spec whose RPMs in outdir are up to date (same spec, files beside it, and
    epoch) is not built again.
    """
    missing = [str(s) for s in specs if not Path(s).is_file()]
    if missing:
        raise InputError(f"spec file not found: {', '.join(missing)}",
                         hint="check [packages] specs in the recipe")
    outdir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for spec in specs:
        spec = Path(spec)
        key = spec_key(spec, source_date_epoch)
        cached = _cached(outdir, spec, key)
        if cached is not None:
            out += cached
            continue
        check_tool("rpmbuild", hint="install it: apt-get install rpm (Debian) "
                                    "or dnf install rpm-build")
        _forget(outdir, spec)
        with tempfile.TemporaryDirectory(prefix="satchel-rpmbuild-") as tmp:
            built = _rpmbuild(spec, Path(tmp), source_date_epoch)
            names = []
            for rpm_path in built:
                target = outdir / rpm_path.name
                part = outdir / f".{rpm_path.name}.part"
                shutil.copyfile(rpm_path, part)
                os.replace(part, target)
                names.append(rpm_path.name)
                out.append(target)
        stamp = _stamp_path(outdir, spec)
        tmp_stamp = stamp.with_suffix(".tmp")
        tmp_stamp.write_text(json.dumps({"key": key, "spec": str(spec), "rpms": names},
                                        indent=1) + "\n", encoding="utf-8")
        os.replace(tmp_stamp, stamp)
    return sorted(out)
