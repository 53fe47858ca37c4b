"""`build.py verify` and `build.py inspect` on a directory, a .tar.zst or an ISO,
and `build.py verify` on the volumes of a multi-volume bundle.

A directory is handed to the installer's own verifier (standard library). An
archive is streamed once with libarchive: every member hashed as it is read,
never extracted, then the same trust-chain comparison runs on the hashes.
Volumes (directories or ISO images, one or all of a set) are checked by the
installer's volume check (installer/restore/volumes.py) on the same kind of
hashes; a chunked file whose chunks are all given is hashed whole on the way,
reading the volumes in order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import libarchive

from installer.bundle import (
    MANIFEST,
    SUMS,
    VOLUME,
    Report,
    bundle_files,
    compare,
    parse_manifest,
    sha256_file,
    verify_dir,
)
from installer.errors import InputError
from installer.restore import volumes


def _strip_top(names: list[str]) -> str:
    """The common top directory of a tar bundle ('demo-1.0/'), or '' (ISO)."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        return tops.pop() + "/"
    return ""


def scan_archive(path: Path) -> tuple[dict[str, str], dict[str, bytes], int]:
    """Hash every regular member; keep the bytes of the two meta files."""
    digests: dict[str, str] = {}
    meta: dict[str, bytes] = {}
    total = 0
    try:
        with libarchive.file_reader(str(path)) as archive:
            for entry in archive:
                if not entry.isreg:
                    continue
                name = entry.pathname.lstrip("./")
                h = hashlib.sha256()
                keep = name.rsplit("/", 1)[-1] in (MANIFEST, SUMS, VOLUME) \
                    and name.count("/") <= 1
                buf = bytearray()
                for block in entry.get_blocks():
                    h.update(block)
                    total += len(block)
                    if keep:
                        buf += block
                digests[name] = h.hexdigest()
                if keep:
                    meta[name] = bytes(buf)
    except libarchive.ArchiveError as e:
        raise InputError(f"{path}: not a readable bundle archive: {e}") from None
    prefix = _strip_top(list(digests))
    if prefix:
        digests = {k[len(prefix):]: v for k, v in digests.items()}
        meta = {k[len(prefix):]: v for k, v in meta.items()}
    return digests, meta, total


def verify(path: Path, *more: Path) -> Report:
    """Verify a bundle, or one or more volumes of a set (a `volumes.SetReport`)."""
    for p in (path, *more):
        if not p.exists():
            raise InputError(f"{p}: no such bundle")
    if more or (path.is_dir() and (path / VOLUME).is_file()):
        return verify_set([path, *more])
    if path.is_dir():
        return verify_dir(path)
    digests, meta, total = scan_archive(path)
    if VOLUME in meta:
        return verify_set([path])
    report = compare(meta.get(MANIFEST), meta.get(SUMS), digests)
    report.bytes = total
    return report


def _volume_of(path: Path) -> volumes.Volume:
    if path.is_dir():
        vol = volumes.read_volume(path)
    else:
        data = None
        try:
            with libarchive.file_reader(str(path)) as archive:
                for entry in archive:  # the data of the others is skipped, not read
                    if entry.isreg and entry.pathname.lstrip("./") == VOLUME:
                        data = b"".join(entry.get_blocks())
                        break
        except libarchive.ArchiveError as e:
            raise InputError(f"{path}: not a readable volume image: {e}") from None
        vol = volumes.parse_volume(data, str(path)) if data is not None else None
    if vol is None:
        raise InputError(f"{path}: not a volume of a multi-volume bundle (no {VOLUME})")
    return vol


def verify_set(paths: list[Path]) -> volumes.SetReport:
    """Check volumes of one set, directories or ISO images, in volume order."""
    vols = sorted(((_volume_of(p), p) for p in paths), key=lambda vp: vp[0].number)
    if all(p.is_dir() for _, p in vols):
        return volumes.verify_volumes([v for v, _ in vols])
    chains = volumes.chains([v for v, _ in vols])
    running = {rel: hashlib.sha256() for rel in chains}
    expect = dict.fromkeys(chains, 1)
    where = {(v.number, c["path"]): c for parts in chains.values() for v, c in parts}
    metas, digests, total = [], {}, 0

    def feed(v: volumes.Volume, rel: str, blocks: Any) -> str:
        c = where.get((v.number, rel))
        chained = c is not None and expect[c["file"]] == c["index"]
        h = hashlib.sha256()
        for block in blocks:
            h.update(block)
            if chained:
                running[c["file"]].update(block)  # type: ignore[index]
        if chained:
            expect[c["file"]] += 1  # type: ignore[index]
        return h.hexdigest()

    for v, p in vols:
        meta: dict[str, bytes] = {}
        if p.is_dir():
            present = bundle_files(p)
            for rel in present:
                if rel in (MANIFEST, SUMS, VOLUME):
                    meta[rel] = (p / rel).read_bytes()
                elif (v.number, rel) in where:
                    digests[(v.number, rel)] = feed(v, rel, _blocks(p / rel))
                else:
                    digests[(v.number, rel)] = sha256_file(p / rel)
                total += (p / rel).stat().st_size
        else:
            present = []
            with libarchive.file_reader(str(p)) as archive:
                for entry in archive:
                    if not entry.isreg:
                        continue
                    rel = entry.pathname.lstrip("./")
                    present.append(rel)
                    if rel in (MANIFEST, SUMS, VOLUME):
                        meta[rel] = b"".join(entry.get_blocks())
                    else:
                        digests[(v.number, rel)] = feed(v, rel, entry.get_blocks())
                        total += entry.size
        metas.append(volumes.Meta(v, meta.get(MANIFEST), meta.get(SUMS), sorted(present)))
    whole = {rel: running[rel].hexdigest() for rel, parts in chains.items()
             if expect[rel] == len(parts) + 1}
    report = volumes.check_set(metas, digests, whole)
    report.bytes = total
    return report


def _blocks(path: Path) -> Any:
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            yield block


def read_manifest(path: Path) -> dict[str, Any]:
    if path.is_dir():
        data = (path / MANIFEST).read_bytes() if (path / MANIFEST).exists() else None
    else:
        if not path.exists():
            raise InputError(f"{path}: no such bundle")
        data = None
        with libarchive.file_reader(str(path)) as archive:
            for entry in archive:
                if entry.isreg and entry.pathname.rsplit("/", 1)[-1] == MANIFEST \
                        and entry.pathname.lstrip("./").count("/") <= 1:
                    data = b"".join(entry.get_blocks())
                    break
    if data is None:
        raise InputError(f"{path}: no {MANIFEST}: not a satchel bundle")
    return parse_manifest(data, f"{path}:{MANIFEST}")
