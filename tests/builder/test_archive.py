"""File-set archives compress with zstd's worker threads: the bytes must not depend on
how many there are (the machine's core count), or reproducibility would."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bundler import archive


def _tree(root: Path) -> list[archive.Member]:
    """About 20 MB: more than two of zstd's jobs (8 MiB at level 3)."""
    rng = random.Random(7)
    for i in range(40):
        d = root / "etc" / f"d{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.choice((100, 5000, 1 << 20))
        (d / f"f{i}.conf").write_text(rng.randbytes(size // 2).hex())
    (root / "etc/link").symlink_to("d0/f0.conf")
    return archive.walk(root, ["etc"], []).members


def _bytes(members: list[archive.Member]) -> bytes:
    out: list[bytes] = []
    archive.write_tree(out.append, members, source_date_epoch=1700000000)
    return b"".join(out)


def test_the_archive_does_not_depend_on_the_number_of_zstd_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = _tree(tmp_path)
    outputs = set()
    for threads in (1, 2, 3, 4):
        monkeypatch.setattr(archive, "ZSTD_THREADS", threads)
        outputs.add(_bytes(members))
    assert len(outputs) == 1
