"""Elements prepared ahead (transaction.prepare_ahead): their prepare runs in the
background while later stages run (elements of different lanes side by side),
append waits for it and commits in order, and any failure aborts them with the
rollback, leaving the tree as it was."""

from __future__ import annotations

import pathlib

import pytest

from installer.errors import EXIT_FAILED, EXIT_OK
from tests.installer.util import run, snapshot, write_plugin

PLUGIN = """
    import os
    import threading

    from installer import engine
    from installer.engine import Stages
    from installer.errors import SatchelError

    PACKAGES_RUNNING = threading.Event()
    STARTED = {"out": threading.Event(), "side": threading.Event()}

    class Staged(engine.TransactionElement):
        '''Writes /srv/<name>.txt: prepare stages it (waiting until the packages
        step runs and the other lane's element has started, which only works if
        prepare runs beside both), commit renames it.'''

        def __init__(self, env, name):
            self.env = env
            self.name = name
            self.step_id = f"staged-{name}"

        def describe(self):
            return f"staged write /srv/{self.name}.txt"

        def prepare(self):
            STARTED[self.name].set()
            self.tmp = self.txn.resolve(f"/srv/.{self.name}.tmp")
            with open(self.tmp, "w") as f:
                f.write(threading.current_thread().name + "\\n")
            if self.env["T/fail_prepare"] and self.name == "out":
                raise SatchelError("staging failed on purpose")
            if not PACKAGES_RUNNING.wait(20):
                raise SatchelError("prepare did not run beside the packages step")
            if not all(e.wait(20) for e in STARTED.values()):
                raise SatchelError("the lanes did not run side by side")

        def commit(self):
            os.replace(self.tmp, self.txn.resolve(f"/srv/{self.name}.txt"))
            with open(self.txn.resolve("/srv/commits.log"), "a") as f:
                f.write(self.name + "\\n")

        def abort(self):
            with open(self.txn.resolve("/srv/aborted.log"), "a") as f:
                f.write(f"aborted {self.name}\\n")
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)

        def undo(self):
            os.unlink(self.txn.resolve(f"/srv/{self.name}.txt"))

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("T/fail_prepare", bool, default=False),
                engine.Key("T/append", bool, default=True))

        @engine.event(stage=Stages.EARLY_MISC, name="t.ahead")
        def _ahead(self):
            PACKAGES_RUNNING.clear()
            for e in STARTED.values():
                e.clear()
            self.side = Staged(self.env, "side")
            self.element = Staged(self.env, "out")
            self.transaction.prepare_ahead(self.side, lane="side")
            self.transaction.prepare_ahead(self.element)

        @engine.event(stage=Stages.PACKAGES, name="t.packages")
        def _packages(self):
            PACKAGES_RUNNING.set()
            self.transaction.append(engine.FileWrite("/etc/pkg.txt", b"installed\\n"))

        @engine.event(stage=Stages.MISC, name="t.commit")
        def _commit(self):
            if self.env["T/append"]:
                self.transaction.append(self.element)
                self.transaction.append(self.side)
"""


@pytest.fixture
def plugins(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_plugin(tmp_path / "plugins", "ahead", PLUGIN)


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "root"
    for d in ("etc", "srv", "var/lib", "var/log"):
        (root / d).mkdir(parents=True)
    return root


def test_prepared_in_the_background_while_packages_run_then_committed(
        root: pathlib.Path, plugins: pathlib.Path) -> None:
    code, _runner, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_OK, out
    assert (root / "srv/out.txt").read_text() == "prepare-ahead-main\n"  # the workers'
    assert (root / "srv/side.txt").read_text() == "prepare-ahead-side\n"
    assert (root / "srv/commits.log").read_text() == "out\nside\n"  # in append order
    assert (root / "etc/pkg.txt").exists()
    assert not (root / "srv/aborted.log").exists()


def test_a_failing_prepare_ahead_fails_the_run_at_append_and_rolls_back(
        root: pathlib.Path, plugins: pathlib.Path) -> None:
    before = snapshot(root)
    code, _runner, out = run(root=root, plugin_dirs=[plugins],
                            settings={"T/fail_prepare": "true"})
    assert code == EXIT_FAILED, out
    assert "staging failed on purpose" in out and "at stage misc" in out
    # the failed one at its append, the other (never appended) with the rollback
    assert sorted((root / "srv/aborted.log").read_text().split("\n")) == [
        "", "aborted out", "aborted side"]
    (root / "srv/aborted.log").unlink()
    assert snapshot(root) == before  # the package step undone, nothing staged left


def test_a_failure_elsewhere_aborts_the_element_prepared_ahead(
        root: pathlib.Path, plugins: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "misc")  # after packages, before the append
    code, _runner, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_FAILED, out
    assert sorted((root / "srv/aborted.log").read_text().split("\n")) == [
        "", "aborted out", "aborted side"]
    (root / "srv/aborted.log").unlink()
    assert snapshot(root) == before


def test_an_element_never_appended_is_aborted_when_the_transaction_ends(
        root: pathlib.Path, plugins: pathlib.Path) -> None:
    code, _runner, out = run(root=root, plugin_dirs=[plugins],
                            settings={"T/append": "false"})
    assert code == EXIT_OK, out
    assert sorted((root / "srv/aborted.log").read_text().split("\n")) == [
        "", "aborted out", "aborted side"]
    assert not list((root / "srv").glob("*.t*"))  # neither committed nor staged
