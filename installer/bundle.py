"""Reading a bundle: the manifest, verification and inspection.

Standard library only: `install verify` and `install inspect` must work on a
target with nothing but python3 (checked with `python3 -I -S`). The builder's
`verify` of a .tar.zst or an ISO reuses `compare()` over hashes it streams out
of the archive with libarchive.

Trust chain: manifest.json names the sha256 of SHA256SUMS; SHA256SUMS (the
`sha256sum -c` format) names every other file of the bundle, `install` included.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO

from installer import BUNDLE_FORMAT
from installer.errors import InputError

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
SIGNATURE = "manifest.json.sig"
VOLUME = "volume.json"  # a volume of a multi-volume set (installer/restore/volumes.py)
# Files that are not listed in SHA256SUMS (they vouch for it, or for the manifest,
# or describe one volume of a set).
META_FILES = frozenset({MANIFEST, SUMS, SIGNATURE, VOLUME})
CHUNK = 1 << 20


@dataclass
class Report:
    """What verification found; `ok` when every list is empty."""

    missing: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    altered: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # manifest/SHA256SUMS trouble
    checked: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.altered or self.problems)

    def lines(self) -> List[str]:
        out = list(self.problems)
        out += [f"{p}: missing" for p in self.missing]
        out += [f"{p}: altered (checksum differs)" for p in self.altered]
        out += [f"{p}: extra file, not in SHA256SUMS" for p in self.extra]
        return out


def parse_manifest(data: bytes, where: str = MANIFEST) -> Dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{where}: not a valid manifest: {e}") from None
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise InputError(f"{where}: not a satchel manifest (no format version)")
    if manifest["format"] != BUNDLE_FORMAT:
        raise InputError(f"{where}: bundle format {manifest['format']} is not supported "
                         f"(this installer reads format {BUNDLE_FORMAT})",
                         hint="use the installer that came with the bundle")
    return manifest


def parse_sums(data: bytes) -> Dict[str, str]:
    """SHA256SUMS -> {path: sha256}. Raises InputError on a malformed line."""
    sums: Dict[str, str] = {}
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or name.startswith("/") or ".." in name.split("/"):
            raise InputError(f"{SUMS}:{n}: malformed line")
        sums[name] = digest
    return sums


def compare(manifest_bytes: Optional[bytes], sums_bytes: Optional[bytes],
            actual: Dict[str, str]) -> Report:
    """Check the trust chain against the sha256 of every file actually present.

    `actual` maps each path found in the bundle (meta files included) to its sha256.
    """
    report = Report()
    if manifest_bytes is None:
        report.missing.append(MANIFEST)
        return report
    if sums_bytes is None:
        report.missing.append(SUMS)
        return report
    try:
        manifest = parse_manifest(manifest_bytes)
        sums = parse_sums(sums_bytes)
    except InputError as e:
        report.problems.append(e.message)
        return report
    if manifest.get("sha256sums") != hashlib.sha256(sums_bytes).hexdigest():
        report.altered.append(SUMS)
    listed = {f["path"]: f["sha256"] for f in manifest.get("files", [])}
    if listed != sums:
        report.problems.append(f"{MANIFEST}: its file list does not match {SUMS}")
    for name in sorted(sums):
        if name not in actual:
            report.missing.append(name)
        elif actual[name] != sums[name]:
            report.altered.append(name)
        report.checked += 1
    report.extra = sorted(p for p in actual if p not in sums and p not in META_FILES)
    return report


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks (the engine's fsutil uses it too)."""
    return file_digest(path, "sha256")


def file_digest(path: Path, algo: str) -> str:
    """The hex digest of a file with hashlib algorithm `algo`, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def bundle_files(root: Path) -> List[str]:
    """Every regular file under a bundle directory, relative, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def verify_dir(root: Path, workers: Optional[int] = None) -> Report:
    """Verify a bundle directory: every file hashed once, in parallel."""
    if not root.is_dir():
        raise InputError(f"{root}: not a bundle directory")
    files = bundle_files(root)
    present = set(files)
    manifest = (root / MANIFEST).read_bytes() if MANIFEST in present else None
    sums = (root / SUMS).read_bytes() if SUMS in present else None
    to_hash = [f for f in files if f not in META_FILES]
    # Largest first keeps both cores busy to the end; hashlib releases the GIL.
    to_hash.sort(key=lambda f: -(root / f).stat().st_size)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        digests = dict(zip(to_hash, pool.map(lambda f: sha256_file(root / f), to_hash)))
    report = compare(manifest, sums, digests)
    report.bytes = sum((root / f).stat().st_size for f in to_hash)
    return report


def load_manifest(root: Path) -> Dict[str, Any]:
    try:
        data = (root / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{root}: no {MANIFEST}: not a satchel bundle") from None
    return parse_manifest(data, str(root / MANIFEST))


def summary(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """What `inspect --json` prints: the manifest without per-file indexes."""
    comps = manifest.get("components", {})
    files = manifest.get("files", [])
    sets = comps.get("filesets", {}) or {}
    db = comps.get("database") or {}
    return {
        "format": manifest.get("format"),
        "satchel_version": manifest.get("satchel_version"),
        "recipe": manifest.get("recipe"),
        "target": manifest.get("target"),
        "build": manifest.get("build"),
        "size": sum(f["size"] for f in files),
        "files": len(files),
        "packages": [p["nevra"] for p in (comps.get("repo") or {}).get("packages", [])],
        "filesets": [{k: s[k] for k in ("name", "archive", "entries", "bytes")}
                     for s in sets.get("sets", [])],
        "secrets": ({k: v for k, v in comps["secrets"].items() if k != "index"}
                    if comps.get("secrets") else None),
        "databases": [{k: d.get(k) for k in ("name", "file", "size", "server_version")}
                      for d in db.get("databases", [])],
        "components": sorted(k for k, v in comps.items() if v),
    }


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def print_summary(s: Dict[str, Any], out: TextIO = sys.stdout) -> None:
    r, t, b = s.get("recipe") or {}, s.get("target") or {}, s.get("build") or {}
    w = out.write
    w(f"bundle    {r.get('name')} {r.get('version')} (format {s['format']}, "
      f"satchel {s['satchel_version']})\n")
    w(f"target    {t.get('distro')} {t.get('version')} {t.get('arch')}\n")
    w(f"built     {b.get('created')} on {b.get('host')}\n")
    w(f"size      {_human(s['size'])} in {s['files']} files\n")
    w(f"packages  {len(s['packages'])}\n")
    for p in s["packages"]:
        w(f"          {p}\n")
    for fs in s["filesets"]:
        w(f"files     {fs['name']}: {fs['entries']} entries, {_human(fs['bytes'])} "
          f"({fs['archive']})\n")
    if s["secrets"]:
        sec = s["secrets"]
        w(f"secrets   {sec['entries']} entries, encryption: {sec['encrypt']}\n")
    for d in s["databases"]:
        w(f"database  {d['name']}: {_human(d['size'] or 0)} dump, PostgreSQL "
          f"{d['server_version']}\n")


def verify_bundle(path: Path, more: Sequence[Path] = ()) -> int:
    """`install verify`: exit 0 when every checksum holds, else name each problem.

    A volume of a multi-volume set (or several: `more`) is verified as such, and
    the volumes the set still needs are named."""
    if (Path(path) / VOLUME).is_file() or more:
        from installer.restore import volumes

        vols = []
        for p in (Path(path), *more):
            vol = volumes.read_volume(p)
            if vol is None:
                raise InputError(f"{p}: not a volume of a satchel set (no {VOLUME})")
            vols.append(vol)
        return volumes.print_report(volumes.verify_volumes(vols))
    report = verify_dir(Path(path))
    if report.ok:
        print(f"OK: {report.checked} files, {_human(report.bytes)} verified")
        return 0
    for line in report.lines():
        print(f"FAILED: {line}", file=sys.stderr)
    return 1


def inspect_bundle(path: Path, as_json: bool = False) -> int:
    """`install inspect`: what is in the bundle, without unpacking anything."""
    s = summary(load_manifest(Path(path)))
    if as_json:
        json.dump(s, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print_summary(s)
    return 0
