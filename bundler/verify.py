"""`build.py verify` and `build.py inspect` on a directory, a .tar.zst or an ISO.

A directory is handed to the installer's own verifier (standard library). An
archive is streamed once with libarchive: every member hashed as it is read,
never extracted, then the same trust-chain comparison runs on the hashes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import libarchive

from installer.bundle import MANIFEST, SUMS, Report, compare, parse_manifest, verify_dir
from installer.errors import InputError


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
                keep = name.rsplit("/", 1)[-1] in (MANIFEST, SUMS) and name.count("/") <= 1
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


def verify(path: Path) -> Report:
    if path.is_dir():
        return verify_dir(path)
    if not path.exists():
        raise InputError(f"{path}: no such bundle")
    digests, meta, total = scan_archive(path)
    report = compare(meta.get(MANIFEST), meta.get(SUMS), digests)
    report.bytes = total
    return report


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
