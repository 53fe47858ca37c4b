"""Restoring a file set is crash-safe without an fsync per file: everything staged is
made durable with one syncfs of the staging file system before the first entry is
renamed into place, every backup is durable before the original it saves is
replaced, and each directory whose entries changed is fsynced once, after its last
change and before commit() returns (so before the journal marks the step done).

The element runs in-process on a small archive; the sync calls and renames are
recorded in the order they happen (and still performed)."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import functools
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from installer.engine import fsutil
from installer.engine.journal import Journal
from installer.engine.paths import resolve_under
from installer.engine.state import StateRegistry
from installer.engine.transaction import Transaction
from installer.restore.extract import ExtractSet

MTIME = 1767225600
UID, GID = os.getuid(), os.getgid()

# The set: two levels of directories under etc/app, and opt/tool whose parent opt
# is not part of the set (created on the way, as a missing parent).
DIRS = ["etc/app", "etc/app/conf.d", "etc/app/conf.d/more", "opt/tool"]
FILES = {
    "etc/app/app.conf": b"port = 8080\n",
    "etc/app/conf.d/a.conf": b"a = 1\n" * 100,
    "etc/app/conf.d/b.conf": b"b = 2\n",
    "etc/app/conf.d/more/c.conf": b"c\n" * 5000,
    "opt/tool/run.sh": b"#!/bin/sh\nexit 0\n",
}
LINKS = {"etc/app/current.conf": "app.conf"}


def _archive(path: Path) -> Dict[str, Any]:
    """Write the set's archive (plain tar) and return its manifest entry."""
    index: Dict[str, Dict[str, Any]] = {}
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted([*DIRS, *FILES, *LINKS]):
            m = tarfile.TarInfo(name)
            m.uid, m.gid, m.uname, m.gname, m.mtime = UID, GID, "", "", MTIME
            rec: Dict[str, Any] = {"uid": UID, "gid": GID, "mtime": MTIME}
            if name in DIRS:
                m.type, m.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(m)
                rec.update(type="dir", mode="0755")
            elif name in LINKS:
                m.type, m.mode, m.linkname = tarfile.SYMTYPE, 0o777, LINKS[name]
                tf.addfile(m)
                rec.update(type="symlink", mode="0777", target=LINKS[name])
            else:
                data = FILES[name]
                m.mode, m.size = 0o640, len(data)
                tf.addfile(m, io.BytesIO(data))
                rec.update(type="file", mode="0640", size=len(data),
                           sha256=hashlib.sha256(data).hexdigest())
            index[name] = rec
    return {"name": "app", "archive": path.name, "index": index}


@dataclasses.dataclass
class Setup:
    root: Path
    txn: Transaction
    element: ExtractSet
    events: List[Tuple[str, ...]]  # ("syncfs", path, n_staged) | ("fsync", path, kind)
    #                                  | ("replace", src, dst)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    fileset = _archive(bundle / "app.tar")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    state_dir = root / "var/lib/satchel"
    state_dir.mkdir(parents=True)
    txn = Transaction(root, state_dir / "backup/run-1", functools.partial(resolve_under, root),
                      StateRegistry(state_dir, "import"), Journal(state_dir, "import"))
    element = ExtractSet(bundle, fileset, step_id="files:app")
    element.bind(txn)
    events: List[Tuple[str, ...]] = []
    real_syncfs, real_fsync, real_replace = fsutil.syncfs, os.fsync, os.replace

    def syncfs(path: Path) -> None:
        staging = getattr(element, "staging", None)
        staged = len(os.listdir(staging)) if staging and staging.is_dir() else 0
        events.append(("syncfs", str(path), str(staged)))
        real_syncfs(path)

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), kind))
        real_fsync(fd)

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        events.append(("replace", str(src), str(dst)))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(fsutil, "syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return Setup(root, txn, element, events)


def _under(path: str, top: Path) -> bool:
    return path == str(top) or path.startswith(str(top) + "/")


def _into_root(s: Setup) -> List[int]:
    """Positions of the renames onto the set's paths (not the engine's own files)."""
    state = s.root / "var/lib/satchel"
    return [i for i, e in enumerate(s.events)
            if e[0] == "replace" and _under(e[2], s.root) and not _under(e[2], state)]


def _file_fsyncs(s: Setup) -> List[str]:
    """Regular files fsynced one by one, apart from the journal's own atomic writes."""
    journal = s.root / "var/lib/satchel/journal"
    return [e[1] for e in s.events
            if e[0] == "fsync" and e[2] == "file" and not _under(e[1], journal)]


def test_staged_files_are_durable_before_the_first_rename_and_dirs_after_the_last(
        setup: Setup) -> None:
    s = setup
    s.element.prepare()
    syncs = [e for e in s.events if e[0] == "syncfs"]
    # One syncfs of the staging area, once every file was staged: prepare returns
    # with all of them on disk.
    assert syncs == [("syncfs", str(s.element.staging), str(len(FILES)))]
    prepared = len(s.events)

    s.element.commit()
    renames = _into_root(s)
    assert len(renames) == len(FILES) + len(LINKS)
    assert all(i > prepared for i in renames)  # nothing moved in before the sync
    assert _file_fsyncs(s) == []  # no fsync per file, staged or restored

    # Each directory that got a new entry (the missing parent opt, created on the
    # way, and root, which got it) is fsynced exactly once, after its last change.
    changed = {s.root, s.root / "opt", s.root / "etc", *(s.root / d for d in DIRS)}
    dir_syncs = [(i, e[1]) for i, e in enumerate(s.events) if e[0] == "fsync"
                 and e[2] == "dir" and not _under(e[1], s.root / "var/lib/satchel")]
    assert sorted(p for _, p in dir_syncs) == sorted(str(d) for d in changed)
    first_dir_sync = min(i for i, _ in dir_syncs)
    assert first_dir_sync > max(renames)
    depths = [p.count("/") for _, p in dir_syncs]
    assert depths == sorted(depths, reverse=True)  # deepest first

    # And the result is the archive's.
    for rel, data in FILES.items():
        assert (s.root / rel).read_bytes() == data
        st = os.lstat(s.root / rel)
        assert (stat.S_IMODE(st.st_mode), int(st.st_mtime)) == (0o640, MTIME)
    assert os.readlink(s.root / "etc/app/current.conf") == "app.conf"
    assert int(os.lstat(s.root / "etc/app/conf.d").st_mtime) == MTIME
    assert not s.element.staging.exists()


def test_backups_are_durable_before_the_originals_are_replaced(setup: Setup) -> None:
    s = setup
    (s.root / "etc/app/conf.d").mkdir(parents=True)
    originals = {"etc/app/app.conf": b"old app\n", "etc/app/conf.d/a.conf": b"old a\n"}
    for rel, data in originals.items():
        (s.root / rel).write_bytes(data)
    os.symlink("elsewhere.conf", s.root / "etc/app/current.conf")
    s.element.prepare()
    prepared = len(s.events)
    s.element.commit()

    backups = {c.rel: c.backup for c in s.element.changes if c.how == "replace"}
    assert set(backups) == {*originals, "etc/app/current.conf"}
    for rel, data in originals.items():
        backup = backups[rel]
        assert backup is not None and backup.read_bytes() == data
    link_backup = backups["etc/app/current.conf"]
    assert link_backup is not None and os.readlink(link_backup) == "elsewhere.conf"

    # One syncfs of the backups' file system, in commit, before the first original
    # is replaced; no fsync of each backup.
    backup_syncs = [i for i, e in enumerate(s.events)
                    if e[0] == "syncfs" and _under(e[1], s.txn.backup_dir)]
    assert len(backup_syncs) == 1 and prepared < backup_syncs[0] < min(_into_root(s))
    assert _file_fsyncs(s) == []

    s.element.undo()  # the backups put back byte for byte
    for rel, data in originals.items():
        assert (s.root / rel).read_bytes() == data
    assert os.readlink(s.root / "etc/app/current.conf") == "elsewhere.conf"


def test_files_copied_in_from_another_file_system_are_synced_before_commit_returns(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    s = setup
    s.element.prepare()
    staging = str(s.element.staging)
    recorded = os.replace

    def cross_device(src: Any, dst: Any, **kw: Any) -> None:
        if _under(str(src), Path(staging)):  # as if staging were on another mount
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        recorded(src, dst, **kw)

    monkeypatch.setattr(os, "replace", cross_device)
    mark = len(s.events)
    s.element.commit()
    after = s.events[mark:]
    target_syncs = [i for i, e in enumerate(after)
                    if e[0] == "syncfs" and _under(e[1], s.root)
                    and not _under(e[1], s.root / "var/lib/satchel")]
    copies = [i for i, e in enumerate(after) if e[0] == "replace"
              and os.path.relpath(e[2], s.root) in FILES]
    assert len(copies) == len(FILES)
    assert len(target_syncs) == 1 and target_syncs[0] > max(copies)
    for rel, data in FILES.items():
        assert (s.root / rel).read_bytes() == data


class _FakeLibc:
    def __init__(self, result: int, err: int = 0) -> None:
        self.result, self.err = result, err
        self.fds: List[int] = []

    def syncfs(self, fd: int) -> int:
        self.fds.append(fd)
        ctypes.set_errno(self.err)
        return self.result


def test_syncfs_reports_a_write_back_error(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fsutil.syncfs(tmp_path)  # the real call, on this file system
    fake = _FakeLibc(-1, errno.EIO)
    monkeypatch.setattr(fsutil, "_libc", fake)
    with pytest.raises(OSError) as info:
        fsutil.syncfs(tmp_path)
    assert info.value.errno == errno.EIO and len(fake.fds) == 1


def test_syncfs_falls_back_to_sync_without_libc_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[str] = []
    monkeypatch.setattr(fsutil, "_libc", object())  # a libc without syncfs
    monkeypatch.setattr(os, "sync", lambda: calls.append("sync"))
    fsutil.syncfs(tmp_path)
    assert calls == ["sync"]


def test_an_absolute_symlink_in_the_root_is_followed_inside_the_root(
        setup: Setup, tmp_path: Path) -> None:
    # On the target, /opt -> /srv/tools means <root>/srv/tools: the host's own
    # /srv/tools (which the host may not even have) must never be written.
    outside = Path("/srv") / f"satchel-test-{tmp_path.name}"
    assert not outside.exists()
    (setup.root / "srv" / outside.name).mkdir(parents=True)
    os.symlink(str(outside), setup.root / "opt")
    setup.element.prepare()
    setup.element.commit()
    assert not outside.exists()
    inside = setup.root / "srv" / outside.name / "tool/run.sh"
    assert inside.read_bytes() == FILES["opt/tool/run.sh"]
    assert os.readlink(setup.root / "opt") == str(outside)  # the link itself untouched
    setup.element.undo()
    assert not (setup.root / "srv" / outside.name / "tool").exists()
