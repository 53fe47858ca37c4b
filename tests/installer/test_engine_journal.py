"""The journal: an interrupted run (killed mid-transaction) resumes, skipping
committed steps; a completed run leaves no journal."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from installer.errors import EXIT_OK
from tests.installer.util import run, write_plugin

REPO = pathlib.Path(__file__).resolve().parents[2]

STEPS = """
    import os
    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        @engine.event(stage=Stages.MISC)
        def _steps(self):
            count = self.resolve("/count")
            def step(n):
                def do():
                    with open(count, "a") as f:
                        f.write(n + "\\n")
                return do
            self.transaction.append(engine.CallbackElement(
                "step one", step("one"), step("undo one"), step_id="one",
                records=[{"kind": "service", "name": "one.service"}]))
            self.transaction.append(engine.FileWrite("/etc/two", b"2", step_id="two"))
            if os.environ.get("TEST_CRASH"):
                os._exit(9)  # power cut: no rollback, no cleanup
            self.transaction.append(engine.CallbackElement(
                "step three", step("three"), step("undo three"), step_id="three"))
"""


def test_interrupted_run_resumes(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    plugins = write_plugin(tmp_path / "p", "steps", STEPS)
    proc = subprocess.run(
        [sys.executable, "-m", "installer", "demo", "--root", str(root), "--unattended",
         "--plugin-dir", str(plugins)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), TEST_CRASH="1"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9
    journal = root / "var/lib/satchel/journal/demo.json"
    assert journal.exists()
    assert (root / "count").read_text() == "one\n"

    code, runner, out = run("demo", root=root, plugin_dirs=[plugins],
                             groups=("core", "demo"))
    assert code == EXIT_OK, out
    assert "resuming an interrupted demo: 3 step(s) already done" in out
    assert (root / "count").read_text() == "one\nthree\n"  # one was not done twice
    assert not journal.exists()
    state = runner.context.state  # type: ignore[union-attr]
    assert "one.service" in state.services("demo")  # records of skipped steps kept
    assert "/etc/two" in state.files("demo")
    assert "/etc/satchel-demo/motd" in state.files("demo")


def test_a_temp_file_left_by_a_write_killed_midway_is_removed_by_the_next_run(
        tmp_path: pathlib.Path) -> None:
    from installer.engine.journal import Journal

    state = tmp_path / "state"
    journal = Journal(state, "import")
    journal.mark("one", [{"kind": "dir", "path": "/x"}])
    stale = state / "journal" / ".satchel-abc123.tmp"  # as fsutil.write_temp names it
    stale.write_text('{"steps": {"one": [')  # a write cut short by kill -9
    again = Journal(state, "import")
    assert not stale.exists()
    assert again.done("one") and again.records("one") == [{"kind": "dir", "path": "/x"}]
