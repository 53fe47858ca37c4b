"""The lock: a second concurrent run (a real second process) exits 4."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

from installer.errors import EXIT_LOCKED, EXIT_OK
from tests.installer.util import write_plugin

REPO = pathlib.Path(__file__).resolve().parents[2]

BLOCKER = """
    import os, time
    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        @engine.event(stage=Stages.SETUP)
        def _wait(self):
            gate = os.environ.get("TEST_GATE")
            if not gate:
                return
            open(gate + ".started", "w").close()
            deadline = time.monotonic() + 20
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.02)
"""


def install(root: pathlib.Path, plugins: pathlib.Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "installer", "demo", "--root", str(root), "--unattended",
         "--plugin-dir", str(plugins)],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO), **env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_second_concurrent_run_exits_4(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    plugins = write_plugin(tmp_path / "p", "blocker", BLOCKER)
    gate = tmp_path / "gate"
    first = install(root, plugins, TEST_GATE=str(gate))
    try:
        deadline = time.monotonic() + 20
        while not pathlib.Path(f"{gate}.started").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "first run never reached setup"
            time.sleep(0.02)
        second = install(root, plugins)
        _out, err = second.communicate(timeout=30)
        assert second.returncode == EXIT_LOCKED, err
        assert f"error: another satchel run holds the lock {root}/var/lib/satchel/lock " \
               f"(pid {first.pid})" in err
        assert "hint: wait for it to finish" in err
        assert not (root / "etc").exists()
        gate.touch()
        _out, err = first.communicate(timeout=30)
        assert first.returncode == EXIT_OK, err
        assert (root / "etc/satchel-demo/motd").exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # the lock is free again
    third = install(root, plugins)
    third.communicate(timeout=30)
    assert third.returncode == EXIT_OK
