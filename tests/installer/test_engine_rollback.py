"""Transactions that really roll back: a failure at any stage from
transaction_begin on leaves the target tree (content, modes, owners) identical."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import stat

import pytest

from installer.engine.stages import ORDER, Stages
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_ROLLBACK_INCOMPLETE
from tests.installer.util import run, snapshot, write_plugin

NOBODY = pwd.getpwnam("nobody")
POSTGRES = pwd.getpwnam("postgres")

CHANGES = """
    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("T/undo_fails", bool, default=False),)

        @engine.event(stage=Stages.EARLY_MISC, name="t.dirs")
        def _dirs(self):
            self.transaction.append(engine.MakeDirs("/srv/app/data/deep", 0o750,
                                                    owner="postgres", group="postgres"))

        @engine.event(stage=Stages.PACKAGES, name="t.packages")
        def _packages(self):
            marker = self.resolve("/var/lib/fakerpm/installed")
            was_installed = marker.exists()
            def do():
                marker.write_text("demo-1.0\\n")
            def undo():
                if self.env["T/undo_fails"]:
                    raise RuntimeError("rpm -e demo failed")
                if not was_installed:
                    marker.unlink()
            self.transaction.append(engine.CallbackElement(
                "install package demo", do, undo,
                records=[{"kind": "package", "name": "demo"}]))

        @engine.event(stage=Stages.MISC, name="t.files")
        def _files(self):
            t = self.transaction
            t.append(engine.FileWrite("/etc/app/app.conf", b"new config\\n", 0o600,
                                      owner="root", group="root"))
            t.append(engine.FileWrite("/srv/app/data/deep/new.txt", b"fresh\\n", 0o640,
                                      owner="nobody", group="postgres"))
            t.append(engine.FileWrite("/opt/made/on/the/way.txt", b"x"))
            t.append(engine.FileRemove("/etc/app/old.conf"))
            t.append(engine.Symlink("/etc/app/current", "app.conf"))
            t.append(engine.Symlink("/etc/app/link", "/srv/app/data"))
"""


def make_root(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "root"
    for d in ("etc/app", "var/lib/fakerpm", "var/log", "srv"):
        (root / d).mkdir(parents=True)
    conf = root / "etc/app/app.conf"
    conf.write_bytes(b"original config\n\x00\xff binary too\n")
    os.chown(conf, NOBODY.pw_uid, POSTGRES.pw_gid)
    os.chmod(conf, 0o4754)
    old = root / "etc/app/old.conf"
    old.write_text("to be removed\n")
    os.chown(old, POSTGRES.pw_uid, POSTGRES.pw_gid)
    os.chmod(old, 0o600)
    os.symlink("/old/target", root / "etc/app/link")
    os.chmod(root / "etc/app", 0o711)
    return root


FAILING_STAGES = [s.value for s in ORDER[ORDER.index(Stages.TRANSACTION_BEGIN):]]


@pytest.mark.root
@pytest.mark.parametrize("stage", FAILING_STAGES)
def test_failure_at_any_stage_leaves_the_tree_identical(tmp_path: pathlib.Path, stage: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_root(tmp_path)
    plugins = write_plugin(tmp_path / "p", "changes", CHANGES)
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    code, _runner, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_FAILED, out
    assert "rolled back" in out
    assert snapshot(root) == before
    assert not (root / "var/lib/satchel/journal/test.json").exists()
    assert not (root / "var/lib/satchel/backup").exists()


@pytest.mark.root
def test_success_makes_every_change_and_records_it(tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path)
    plugins = write_plugin(tmp_path / "p", "changes", CHANGES)
    code, runner, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_OK, out
    conf = root / "etc/app/app.conf"
    assert conf.read_bytes() == b"new config\n"
    st = conf.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 0, 0)
    new = (root / "srv/app/data/deep/new.txt").stat()
    assert (new.st_uid, new.st_gid) == (NOBODY.pw_uid, POSTGRES.pw_gid)
    deep = (root / "srv/app/data/deep").stat()
    assert (stat.S_IMODE(deep.st_mode), deep.st_uid) == (0o750, POSTGRES.pw_uid)
    assert not (root / "etc/app/old.conf").exists()
    assert os.readlink(root / "etc/app/current") == "app.conf"
    assert os.readlink(root / "etc/app/link") == "/srv/app/data"
    assert (root / "var/lib/fakerpm/installed").exists()
    # no debris beside the files; the backup lives in the state directory
    assert sorted(p.name for p in (root / "etc/app").iterdir()) == ["app.conf", "current", "link"]
    backups = list((root / "var/lib/satchel/backup").rglob("app.conf"))
    assert len(backups) == 1 and backups[0].read_bytes().startswith(b"original config")
    state = runner.context.state  # type: ignore[union-attr]
    files = state.files("test")
    assert files["/etc/app/app.conf"]["how"] == "replaced"
    assert files["/srv/app/data/deep/new.txt"]["how"] == "created"
    assert len(files["/srv/app/data/deep/new.txt"]["sha256"]) == 64
    assert "/etc/app/old.conf" not in files
    assert "/srv/app" in state.dirs("test") and "/srv" not in state.dirs("test")
    assert "demo" in state.packages("test")
    from installer.engine.state import StateRegistry
    reread = StateRegistry(root / "var/lib/satchel", "other")
    assert reread.files("test") == files


@pytest.mark.root
def test_failure_after_an_earlier_run_restores_its_state(tmp_path: pathlib.Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_root(tmp_path)
    plugins = write_plugin(tmp_path / "p", "changes", CHANGES)
    assert run(root=root, plugin_dirs=[plugins])[0] == EXIT_OK
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    assert run(root=root, plugin_dirs=[plugins])[0] == EXIT_FAILED
    assert snapshot(root) == before  # state.json included


@pytest.mark.root
def test_undo_failure_exits_5_listing_manual_action(tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_root(tmp_path)
    plugins = write_plugin(tmp_path / "p", "changes", CHANGES)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, runner, out = run(root=root, plugin_dirs=[plugins], settings=["T/undo_fails=yes"])
    assert code == EXIT_ROLLBACK_INCOMPLETE
    assert "manual action needed" in out
    assert "install package demo: rpm -e demo failed" in out
    assert runner.error is not None and runner.error.manual == [  # type: ignore[attr-defined]
        "install package demo: rpm -e demo failed"]
    # everything else was still undone
    assert (root / "etc/app/app.conf").read_bytes().startswith(b"original config")
    assert not (root / "srv/app").exists()


@pytest.mark.root
def test_failing_element_is_aborted_and_earlier_ones_undone(tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path)
    plugins = write_plugin(tmp_path / "p", "bad", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.MISC)
            def _files(self):
                self.transaction.append(engine.FileWrite("/etc/app/app.conf", b"new"))
                self.transaction.append(engine.FileWrite("/etc/app/x", b"y", owner="nosuchuser"))
    """)
    before = snapshot(root)
    code, _, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_FAILED
    assert "unknown user 'nosuchuser'" in out
    assert snapshot(root) == before


CLOSEUP = """
    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("T/fail_late", bool, default=False),)

        @engine.event(stage=Stages.MISC, name="t.write")
        def _write(self):
            self.transaction.append(engine.FileWrite("/etc/app/app.conf", b"misc\\n"))

        @engine.event(stage=Stages.CLOSEUP, name="t.start")
        def _start(self):
            self.transaction.append(engine.FileWrite("/run/app.started", b"1\\n"))

        @engine.event(stage=Stages.CLOSEUP, name="t.late", after=("t.start",))
        def _late(self):
            if self.env["T/fail_late"]:
                raise RuntimeError("post-setup command failed")
"""


def test_closeup_changes_are_recorded_and_undone_by_a_later_closeup_failure(
        tmp_path: pathlib.Path) -> None:
    root = make_root(tmp_path)
    plugins = write_plugin(tmp_path / "plugins", "late", CLOSEUP)
    before = snapshot(root)
    code, runner, out = run(root=root, plugin_dirs=[plugins], settings={"T/fail_late": "true"})
    assert code == EXIT_FAILED, out
    assert "post-setup command failed" in out
    assert snapshot(root) == before  # the closeup file and the misc file are both undone

    code, runner, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_OK, out
    assert (root / "run/app.started").read_bytes() == b"1\n"
    state = json.loads((root / "var/lib/satchel/state.json").read_text())
    assert set(state["actions"]["test"]["files"]) >= {"/etc/app/app.conf", "/run/app.started"}
    assert runner.context.transaction.changes() == 2
