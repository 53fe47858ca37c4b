"""The target's view of a volume set (installer/restore/volview.py): symlinks for
whole files, pipes that serve chunked streamed files to every reader in turn, and
a joined copy for a chunked file that must be seekable."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

from bundler import media
from bundler.media import Medium
from bundler.output import OutputFormat, publish_volumes
from bundler.progress import Progress
from installer.restore import volumes
from installer.restore.volview import View, volumes_of
from tests.media.test_layout import KiB, staged


def _set(tmp_path: Path) -> tuple[list[Path], Path]:
    stage, manifest = staged(tmp_path, {
        "db/app.dump": 300 * KiB, "files/config.tar.zst": 20 * KiB,
        "repo/Packages/big.rpm": 150 * KiB, "repo/repodata/repomd.xml": 1 * KiB})
    os.link(stage / "db/app.dump", tmp_path / "app.dump")
    os.link(stage / "repo/Packages/big.rpm", tmp_path / "big.rpm")
    os.link(stage / "files/config.tar.zst", tmp_path / "config.tar.zst")
    layout = media.plan(stage, manifest, Medium("split", 256 * KiB, 100 * KiB, False), "V")
    paths = publish_volumes(stage, layout, tmp_path / "out", OutputFormat.dir, sde=0,
                            progress=Progress(quiet=True), force=False)
    return paths, tmp_path  # the originals, linked before staging went away


def test_the_view_serves_every_file_of_the_set(tmp_path: Path) -> None:
    paths, orig = _set(tmp_path)
    vols = volumes.collect(paths[-1], paths[:-1])
    with View(vols) as view:
        root = view.path
        assert stat.S_ISFIFO(os.lstat(root / "db/app.dump").st_mode)  # chunked, streamed
        assert stat.S_ISFIFO(os.lstat(root / "files/config.tar.zst").st_mode)  # zstd input
        assert (root / "repo/repodata/repomd.xml").is_symlink()  # whole: in place
        big = root / "repo/Packages/big.rpm"  # over the file limit, must be seekable
        assert big.is_file() and not big.is_symlink()
        assert big.read_bytes() == (orig / "big.rpm").read_bytes()
        want = (orig / "app.dump").read_bytes()
        # every reader gets the whole stream, also after one that stopped early
        with open(root / "db/app.dump", "rb") as f:
            assert f.read(5) == want[:5]
        assert (root / "db/app.dump").read_bytes() == want
        got = subprocess.run(["cat", str(root / "db/app.dump")], capture_output=True,
                             check=True).stdout
        assert got == want
        assert (root / "files/config.tar.zst").read_bytes() == \
            (orig / "config.tar.zst").read_bytes()
        assert [v.number for v in volumes_of(root) or []] == [v.number for v in vols]
        report = volumes.verify_volumes(volumes_of(root) or [])
        assert report.ok and not report.needed, report.lines()
    assert not view.path.exists()


def test_closing_the_view_stops_its_pipes(tmp_path: Path) -> None:
    paths, _ = _set(tmp_path)
    view = View(volumes.collect(paths[0], paths[1:]))
    threads = [t for t in threading.enumerate() if t.name.startswith("volume pipe")]
    assert threads
    view.close()
    assert not any(t.is_alive() for t in threads)
    assert not view.path.exists()
