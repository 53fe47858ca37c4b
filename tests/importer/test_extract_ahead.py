"""A file set staged ahead (while dnf installs the packages) is committed against
the target as it is at commit: what changed since prepare is classified again.

The element runs in-process; between prepare() and commit() each test changes
the root the way a package transaction can: installs a file or directory of the
set, adds the user that owns part of it, or rewrites a file that was already
identical (then nothing was staged for it and the set is staged again)."""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import tarfile
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from installer.engine.journal import Journal
from installer.engine.paths import resolve_under
from installer.engine.state import StateRegistry
from installer.engine.transaction import Transaction
from installer.restore.extract import ExtractSet

MTIME = 1767225600
SVC_UID = 4321  # the uid the target gives user "svc" once a package adds it
# name -> (type, content or link target, owner name)
ENTRIES: Dict[str, Tuple[str, str, str]] = {
    "etc/app": ("dir", "", "root"),
    "etc/app/app.conf": ("file", "port = 8080\n", "root"),
    "etc/app/same.conf": ("file", "same = yes\n", "root"),
    "etc/app/conf.d": ("dir", "", "root"),
    "etc/app/current.conf": ("symlink", "app.conf", "root"),
    "var/lib/svc": ("dir", "", "svc"),
    "var/lib/svc/data": ("file", "svc data\n", "svc"),
}


def _archive(path: Path) -> Dict[str, Any]:
    """The set's archive (plain tar; the "svc" entries carry uid 999, the source's
    number) and its manifest entry."""
    index: Dict[str, Dict[str, Any]] = {}
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, (kind, body, owner) in sorted(ENTRIES.items()):
            m = tarfile.TarInfo(name)
            number = 0 if owner == "root" else 999
            m.uid = m.gid = number
            m.uname = m.gname = owner
            m.mtime = MTIME
            rec: Dict[str, Any] = {"uid": number, "gid": number, "user": owner,
                                   "group": owner, "mtime": MTIME, "type": kind}
            if kind == "dir":
                m.type, m.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(m)
                rec["mode"] = "0755"
            elif kind == "symlink":
                m.type, m.mode, m.linkname = tarfile.SYMTYPE, 0o777, body
                tf.addfile(m)
                rec.update(mode="0777", target=body)
            else:
                data = body.encode()
                m.mode, m.size = 0o640, len(data)
                tf.addfile(m, io.BytesIO(data))
                rec.update(mode="0640", size=len(data), sha256=hashlib.sha256(data).hexdigest())
            index[name] = rec
    return {"name": "app", "archive": path.name, "index": index}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/app").mkdir(parents=True)
    (root / "var/lib/satchel").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    os.chmod(root / "etc/app", 0o755)
    os.utime(root / "etc/app", (MTIME, MTIME))
    same = root / "etc/app/same.conf"  # already identical on the target
    same.write_text(ENTRIES["etc/app/same.conf"][1])
    os.chmod(same, 0o640)
    return root


def _element(root: Path, tmp_path: Path) -> ExtractSet:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    state = root / "var/lib/satchel"
    txn = Transaction(root, state / "backup/run-1", functools.partial(resolve_under, root),
                      StateRegistry(state, "import"), Journal(state, "import"))
    element = ExtractSet(bundle, _archive(bundle / "app.tar"), step_id="files:app")
    element.bind(txn)
    return element


def _records(element: ExtractSet) -> Dict[str, str]:
    return {r["path"]: r.get("how", r["kind"]) for r in element.records()}


def test_what_a_package_installed_meanwhile_is_backed_up_replaced_and_undone(
        root: Path, tmp_path: Path) -> None:
    element = _element(root, tmp_path)
    element.prepare()
    assert {c.rel: c.how for c in element.changes}["etc/app/app.conf"] == "create"
    # dnf runs: the package ships its own app.conf and the conf.d directory
    (root / "etc/app/app.conf").write_text("port = 80  # package default\n")
    (root / "etc/app/conf.d").mkdir(mode=0o755)
    element.commit()
    assert (root / "etc/app/app.conf").read_text() == "port = 8080\n"
    assert _records(element)["/etc/app/app.conf"] == "replaced"
    assert "/etc/app/conf.d" not in _records(element)  # not created by the set
    element.undo()
    assert (root / "etc/app/app.conf").read_text() == "port = 80  # package default\n"
    assert (root / "etc/app/conf.d").is_dir()


def test_a_staged_file_that_became_identical_is_not_touched(root: Path,
                                                             tmp_path: Path) -> None:
    element = _element(root, tmp_path)
    element.prepare()
    conf = root / "etc/app/app.conf"
    conf.write_text(ENTRIES["etc/app/app.conf"][1])
    os.chmod(conf, 0o640)
    before = os.stat(conf).st_ino
    identical = element.identical
    element.commit()
    assert os.stat(conf).st_ino == before
    assert element.identical == identical + 1
    assert "/etc/app/app.conf" not in _records(element)


def test_a_user_added_meanwhile_owns_the_entries_that_name_it(
        root: Path, tmp_path: Path) -> None:
    element = _element(root, tmp_path)
    element.prepare()
    assert any("'svc' does not exist" in w for w in element.warnings)
    # a package's scriptlet adds the user and group "svc"
    with open(root / "etc/passwd", "a") as f:
        f.write(f"svc:x:{SVC_UID}:{SVC_UID}::/var/lib/svc:/sbin/nologin\n")
    with open(root / "etc/group", "a") as f:
        f.write(f"svc:x:{SVC_UID}:\n")
    element.commit()
    for rel in ("var/lib/svc", "var/lib/svc/data"):
        st = os.lstat(root / rel)
        assert (st.st_uid, st.st_gid) == (SVC_UID, SVC_UID), rel
    assert os.lstat(root / "var/lib/svc/data").st_mode & 0o7777 == 0o640
    assert element.warnings == []


def test_an_identical_file_changed_meanwhile_makes_the_set_staged_again(
        root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    element = _element(root, tmp_path)
    element.prepare()
    same = root / "etc/app/same.conf"
    assert "etc/app/same.conf" not in {c.rel for c in element.changes}
    same.write_text("same = no  # rewritten by a package\n")
    with caplog.at_level(logging.INFO, logger="satchel.files"):
        element.commit()
    assert "/etc/app/same.conf changed on the target since it was staged" in caplog.text
    assert same.read_text() == ENTRIES["etc/app/same.conf"][1]
    assert _records(element)["/etc/app/same.conf"] == "replaced"
    element.undo()
    assert same.read_text() == "same = no  # rewritten by a package\n"


def test_nothing_changed_meanwhile_commits_what_prepare_planned(
        root: Path, tmp_path: Path) -> None:
    element = _element(root, tmp_path)
    element.prepare()
    planned = [(c.rel, c.how, c.uid, c.gid) for c in element.changes]
    staged = sorted(p.name for p in element.staging.iterdir())
    element.commit()
    assert [(c.rel, c.how, c.uid, c.gid) for c in element.changes] == planned
    assert len(staged) == 2  # app.conf and svc's data: same.conf was identical
    assert (root / "etc/app/current.conf").readlink() == Path("app.conf")
