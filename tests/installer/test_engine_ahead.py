"""Elements prepared ahead (transaction.prepare_ahead): their prepare runs in the
background while later stages run, append waits for it and commits in order, and
any failure aborts them with the rollback, leaving the tree as it was."""

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

    class Staged(engine.TransactionElement):
        '''Writes /srv/out.txt: prepare stages it (waiting until the packages step
        runs, which only works if prepare runs beside it), commit renames it.'''

        def __init__(self, env):
            self.env = env
            self.step_id = "staged"

        def describe(self):
            return "staged write /srv/out.txt"

        def prepare(self):
            self.tmp = self.txn.resolve("/srv/.out.tmp")
            with open(self.tmp, "w") as f:
                f.write(threading.current_thread().name + "\\n")
            if self.env["T/fail_prepare"]:
                raise SatchelError("staging failed on purpose")
            if not PACKAGES_RUNNING.wait(20):
                raise SatchelError("prepare did not run beside the packages step")

        def commit(self):
            os.replace(self.tmp, self.txn.resolve("/srv/out.txt"))

        def abort(self):
            with open(self.txn.resolve("/srv/aborted.log"), "a") as f:
                f.write("aborted\\n")
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)

        def undo(self):
            os.unlink(self.txn.resolve("/srv/out.txt"))

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("T/fail_prepare", bool, default=False),
                engine.Key("T/append", bool, default=True))

        @engine.event(stage=Stages.EARLY_MISC, name="t.ahead")
        def _ahead(self):
            PACKAGES_RUNNING.clear()
            self.element = Staged(self.env)
            self.transaction.prepare_ahead(self.element)

        @engine.event(stage=Stages.PACKAGES, name="t.packages")
        def _packages(self):
            PACKAGES_RUNNING.set()
            self.transaction.append(engine.FileWrite("/etc/pkg.txt", b"installed\\n"))

        @engine.event(stage=Stages.MISC, name="t.commit")
        def _commit(self):
            if self.env["T/append"]:
                self.transaction.append(self.element)
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
    assert (root / "srv/out.txt").read_text() == "prepare-ahead\n"  # the worker's thread
    assert (root / "etc/pkg.txt").exists()
    assert not (root / "srv/aborted.log").exists()


def test_a_failing_prepare_ahead_fails_the_run_at_append_and_rolls_back(
        root: pathlib.Path, plugins: pathlib.Path) -> None:
    before = snapshot(root)
    code, _runner, out = run(root=root, plugin_dirs=[plugins],
                            settings={"T/fail_prepare": "true"})
    assert code == EXIT_FAILED, out
    assert "staging failed on purpose" in out and "at stage misc" in out
    assert (root / "srv/aborted.log").read_text() == "aborted\n"
    (root / "srv/aborted.log").unlink()
    assert snapshot(root) == before  # the package step undone, nothing staged left


def test_a_failure_elsewhere_aborts_the_element_prepared_ahead(
        root: pathlib.Path, plugins: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "misc")  # after packages, before the append
    code, _runner, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_FAILED, out
    assert (root / "srv/aborted.log").read_text() == "aborted\n"
    (root / "srv/aborted.log").unlink()
    assert snapshot(root) == before


def test_an_element_never_appended_is_aborted_when_the_transaction_ends(
        root: pathlib.Path, plugins: pathlib.Path) -> None:
    code, _runner, out = run(root=root, plugin_dirs=[plugins],
                            settings={"T/append": "false"})
    assert code == EXIT_OK, out
    assert (root / "srv/aborted.log").read_text() == "aborted\n"
    assert not (root / "srv/out.txt").exists() and not (root / "srv/.out.tmp").exists()
