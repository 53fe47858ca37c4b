"""The volume layout (bundler/media.py) on a synthetic staged bundle: sizes, the
split policy, the refusal of a medium too small, and the ISO size estimate
against images libarchive really writes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bundler import media
from bundler.media import Medium
from bundler.output import OutputFormat, existing_outputs, publish_volumes, volume_paths
from bundler.progress import Progress
from bundler.verify import verify
from installer.errors import InputError
from installer.restore import volumes

KiB = 1024


def staged(where: Path, files: dict[str, int]) -> tuple[Path, dict]:
    """A staging tree of random files (plus install), its SHA256SUMS and manifest."""
    root = where / "stage"
    entries = []
    for rel, size in sorted({"install": 40 * KiB, **files}.items()):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        p.write_bytes(data)
        entries.append({"path": rel, "size": size, "sha256": hashlib.sha256(data).hexdigest()})
    sums = "".join(f"{e['sha256']}  {e['path']}\n" for e in entries).encode()
    (root / "SHA256SUMS").write_bytes(sums)
    manifest = {"format": 1, "files": entries, "sha256sums": hashlib.sha256(sums).hexdigest()}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root, manifest


def split(capacity: int, iso: bool = False, file_limit: int = media.FAT32_FILE_LIMIT) -> Medium:
    return Medium("split", capacity, file_limit, iso)


def test_sizes_parse_like_split() -> None:
    assert media.parse_size("700M") == 700 << 20
    assert media.parse_size("4G") == 4 << 30
    assert media.parse_size("4GiB") == 4 << 30
    assert media.parse_size("4GB") == 4_000_000_000
    assert media.parse_size("123456") == 123456
    assert media.parse_size("300k") == 300 * KiB
    for bad in ("", "x", "4Q", "-1", "0"):
        with pytest.raises(ValueError):
            media.parse_size(bad)


def test_media_and_their_limits() -> None:
    dvd = media.medium_for("dvd", None, iso=False)
    assert dvd == Medium("dvd", 4_700_372_992, media.ISO_FILE_LIMIT, True)
    usb = media.medium_for("usb", None, iso=False)
    assert usb == Medium("usb", None, 4 * 2**30 - 1, False)
    assert media.medium_for("usb", 8 << 30, iso=False) == Medium("usb", 8 << 30,
                                                                 4 * 2**30 - 1, False)
    assert media.medium_for(None, 1 << 20, iso=True) == Medium("split", 1 << 20,
                                                               media.ISO_FILE_LIMIT, True)
    assert media.medium_for(None, None, iso=True) is None
    with pytest.raises(InputError, match="directories or ISO"):
        media.medium_for("dvd", None, iso=False, archive=True)
    with pytest.raises(InputError, match="larger than a dvd"):
        media.medium_for("dvd", 5 << 30, iso=False)


def test_streamed_files_are_split_rpms_move_whole(tmp_path: Path) -> None:
    stage, manifest = staged(tmp_path, {
        "db/app.dump": 300 * KiB, "files/config.tar.zst": 150 * KiB,
        "repo/Packages/a.rpm": 90 * KiB, "repo/Packages/b.rpm": 90 * KiB,
        "repo/repodata/repomd.xml": 2 * KiB})
    layout = media.plan(stage, manifest, split(256 * KiB), "T")
    assert len(layout.volumes) > 2
    for v in layout.volumes:
        assert v.total() <= 256 * KiB
        assert {p.path for p in v.pieces} >= {"install", "manifest.json", "SHA256SUMS"}
    pieces = [p for v in layout.volumes for p in v.pieces]
    dump = [p for p in pieces if p.file == "db/app.dump"]
    assert len(dump) > 1 and [p.index for p in dump] == list(range(1, len(dump) + 1))
    assert sum(p.size for p in dump) == 300 * KiB and all(p.count == len(dump) for p in dump)
    assert [p.offset for p in dump] == [sum(q.size for q in dump[:i]) for i in range(len(dump))]
    rpms = [p for p in pieces if p.file.endswith(".rpm")]
    assert [p.index for p in rpms] == [0, 0]  # whole, each on some volume
    assert layout.label(2) == "T_2"


def test_a_file_over_the_file_limit_is_chunked_on_one_volume(tmp_path: Path) -> None:
    stage, manifest = staged(tmp_path, {"repo/Packages/big.rpm": 200 * KiB})
    layout = media.plan(stage, manifest, Medium("usb", None, 64 * KiB, False), "T")
    assert len(layout.volumes) == 1
    big = [p for p in layout.volumes[0].pieces if p.file == "repo/Packages/big.rpm"]
    assert [p.size for p in big] == [64 * KiB, 64 * KiB, 64 * KiB, 8 * KiB]
    # One width for every chunk number of a file, wide enough for any count it can
    # reach (999 volumes plus its size over the file limit), so name order is chunk order.
    assert [p.path for p in big] == [f"repo/Packages/big.rpm.part{i:04d}" for i in (1, 2, 3, 4)]


def test_a_medium_too_small_is_refused_naming_what_every_volume_carries(
        tmp_path: Path) -> None:
    stage, manifest = staged(tmp_path, {"db/app.dump": 300 * KiB})
    with pytest.raises(InputError) as e:
        media.plan(stage, manifest, split(100 * KiB), "T")
    assert "too small" in e.value.message and "installer" in e.value.message
    assert "--split-size" in (e.value.hint or "")


@pytest.mark.parametrize("fmt", [OutputFormat.dir, OutputFormat.iso])
def test_volumes_are_written_within_the_size_and_verify(tmp_path: Path,
                                                       fmt: OutputFormat) -> None:
    cap = 300 * KiB
    stage, manifest = staged(tmp_path, {
        "db/app.dump": 500 * KiB, "db/globals.sql": 1 * KiB,
        **{f"repo/Packages/p{i:02d}.rpm": 7 * KiB for i in range(12)},
        "repo/repodata/repomd.xml": 2 * KiB, "secrets/secrets.tar.zst": 3 * KiB})
    layout = media.plan(stage, manifest, split(cap, iso=fmt is OutputFormat.iso), "LBL")
    out = tmp_path / ("out" + fmt.extension())
    paths = publish_volumes(stage, layout, out, fmt, sde=0, progress=Progress(quiet=True),
                            force=False)
    assert paths == volume_paths(out, fmt, len(layout.volumes))
    assert len(paths) == len(layout.volumes) > 2
    assert not stage.exists()
    assert existing_outputs(out, fmt) == sorted(paths)
    for v, p in zip(layout.volumes, paths):
        size = p.stat().st_size if fmt is OutputFormat.iso else \
            sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        assert size <= cap, (p, size, v.total())
        assert size <= v.total()  # the estimate errs on the large side
    report = verify(*paths)
    assert report.ok, report.lines()
    assert isinstance(report, volumes.SetReport) and report.needed == []


def test_existing_volumes_are_refused_without_force_and_replaced_with_it(
        tmp_path: Path) -> None:
    stage, manifest = staged(tmp_path, {"db/app.dump": 300 * KiB})
    layout = media.plan(stage, manifest, split(200 * KiB), "T")
    out = tmp_path / "out"
    (tmp_path / "out.vol7").mkdir()  # left by an older, larger set
    with pytest.raises(Exception, match="appeared during the build"):
        publish_volumes(stage, layout, out, OutputFormat.dir, sde=0,
                        progress=Progress(quiet=True), force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.vol7"]
    stage, manifest = staged(tmp_path / "again", {"db/app.dump": 300 * KiB})
    layout = media.plan(stage, manifest, split(200 * KiB), "T")
    paths = publish_volumes(stage, layout, out, OutputFormat.dir, sde=0,
                            progress=Progress(quiet=True), force=True)
    assert not (tmp_path / "out.vol7").exists()
    assert all(p.is_dir() for p in paths)
