"""The import refuses archive members that could write outside the root or create
devices, whatever the manifest says: checked on real tar archives."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from installer.restore.tarstream import check_member, scan, symlink_escapes


def _archive(path: Path, members: list[tarfile.TarInfo]) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    path.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=raw.getvalue(),
                                    capture_output=True, check=True).stdout)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    m.size = 1 if kind == tarfile.REGTYPE else 0
    return m


def test_dangerous_members_are_all_named(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "bad.tar.zst", [
        _member("etc/ok.conf"),
        _member("../escape"),
        _member("/etc/absolute"),
        _member("etc/a/../../b"),
        _member("dev/sda", tarfile.BLKTYPE),
        _member("dev/tty", tarfile.CHRTYPE),
        _member("run/pipe", tarfile.FIFOTYPE),
        _member("etc/hard", tarfile.LNKTYPE, "etc/ok.conf"),
        _member("etc/out", tarfile.SYMTYPE, "../../../etc/shadow"),
        _member("etc/inside", tarfile.SYMTYPE, "../etc/ok.conf"),
        _member("etc/abs", tarfile.SYMTYPE, "/etc/ok.conf"),
    ])
    refused = dict(scan(archive))
    assert set(refused) == {"../escape", "/etc/absolute", "etc/a/../../b", "dev/sda",
                            "dev/tty", "run/pipe", "etc/hard", "etc/out"}
    assert "leads out of the root" in refused["etc/out"]
    assert "block device" in refused["dev/sda"]


@pytest.mark.parametrize(("name", "target", "escapes"), [
    ("a/link", "../b", False),
    ("a/link", "../../b", True),
    ("link", "..", True),
    ("a/b/link", "./../../c", False),
    ("a/link", "/anything", False),  # absolute links resolve inside the root
])
def test_symlink_escape(name: str, target: str, escapes: bool) -> None:
    assert symlink_escapes(name, target) is escapes


def test_a_plain_file_is_accepted() -> None:
    assert check_member(_member("etc/demo/app.conf")) is None
