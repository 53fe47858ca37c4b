"""The runner: which stages run, plugin loading, conditions, --debug sequence."""

from __future__ import annotations

import pathlib

import pytest

from installer.engine.stages import ORDER
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from tests.installer.util import run, write_plugin

RECORDER = """
    from installer import engine
    from installer.engine import Stages

    def _make(stage):
        @engine.event(stage=stage, name="rec." + stage.value)
        def method(self):
            with open(self.env["REC/file"], "a") as f:
                f.write(stage.value + "\\n")
        return method

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("REC/file", str, required=True),)
    for _s in Stages:
        setattr(Plugin, "_" + _s.value, _make(_s))
"""


def stages_run(log: pathlib.Path) -> list:
    return log.read_text().split() if log.exists() else []


def test_all_stages_run_in_order(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "rec", RECORDER)
    rec = tmp_path / "rec.txt"
    (tmp_path / "root").mkdir()
    code, _, _ = run(root=tmp_path / "root", plugin_dirs=[plugins],
                     settings={"REC/file": str(rec)})
    assert code == EXIT_OK
    assert stages_run(rec)[0] == "boot" and stages_run(rec)[-1] == "reboot"
    assert len(stages_run(rec)) == 18


@pytest.mark.parametrize("stage", ["boot", "validation", "misc", "closeup"])
def test_after_a_failure_only_cleanup_and_terminate_run(tmp_path: pathlib.Path, stage: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = write_plugin(tmp_path / "p", "rec", RECORDER)
    rec = tmp_path / "rec.txt"
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    code, runner, _ = run(root=tmp_path / "root", plugin_dirs=[plugins],
                          settings={"REC/file": str(rec)})
    assert code == EXIT_FAILED
    assert f"failure injected at stage {stage}" in str(runner.error)
    ran = stages_run(rec)
    before = [s.value for s in ORDER[:[s.value for s in ORDER].index(stage)]]
    assert ran == before + [s for s in ("cleanup", "pre_terminate", "terminate")
                            if s not in before]


def test_ordering_error_is_reported_before_any_stage(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "rec", RECORDER)
    write_plugin(plugins, "bad", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.MISC, name="bad.a", after=("bad.b",))
            def a(self): pass

            @engine.event(stage=Stages.MISC, name="bad.b", after=("bad.a",))
            def b(self): pass
    """)
    rec = tmp_path / "rec.txt"
    (tmp_path / "root").mkdir()
    code, _runner, out = run(root=tmp_path / "root", plugin_dirs=[plugins],
                            settings={"REC/file": str(rec)})
    assert code == EXIT_USAGE
    assert "cycle among events bad.a, bad.b" in out
    assert not rec.exists()


def test_condition_false_skips_the_method(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "cond", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            KEYS = (engine.Key("C/on", bool, default=False), engine.Key("C/out", str))

            @engine.event(stage=Stages.SETUP, condition=lambda self: self.env["C/on"])
            def _maybe(self):
                open(self.env["C/out"], "w").close()
    """)
    (tmp_path / "root").mkdir()
    out = tmp_path / "out"
    assert run(root=tmp_path / "root", plugin_dirs=[plugins],
               settings={"C/out": str(out)})[0] == EXIT_OK
    assert not out.exists()
    assert run(root=tmp_path / "root", plugin_dirs=[plugins],
               settings={"C/out": str(out), "C/on": "yes"})[0] == EXIT_OK
    assert out.exists()


def test_debug_prints_the_sequence(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "rec", RECORDER)
    (tmp_path / "root").mkdir()
    _, _, out = run(root=tmp_path / "root", plugin_dirs=[plugins], debug=True,
                    settings={"REC/file": str(tmp_path / "r")})
    assert "sequence: boot" in out and "rec.boot" in out
    assert out.index("rec.setup") < out.index("rec.misc")


def test_directory_plugin_with_files_beside_it(tmp_path: pathlib.Path) -> None:
    pkg = tmp_path / "plugins" / "driverdeploy"
    pkg.mkdir(parents=True)
    (pkg / "payload.txt").write_text("driver\n")
    (pkg / "__init__.py").write_text(
        "from installer import engine\n"
        "from installer.engine import Stages\n"
        "class Plugin(engine.PluginBase):\n"
        "    @engine.event(stage=Stages.MISC)\n"
        "    def _copy(self):\n"
        "        data = (self.plugin_path / 'payload.txt').read_bytes()\n"
        "        self.transaction.append(engine.FileWrite('/opt/driver.txt', data))\n")
    root = tmp_path / "root"
    root.mkdir()
    code, _, out = run(root=root, plugin_dirs=[tmp_path / "plugins"])
    assert code == EXIT_OK, out
    assert (root / "opt/driver.txt").read_text() == "driver\n"


def test_module_without_plugin_class_is_an_error(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "oops", "X = 1\n")
    write_plugin(plugins, "_helper", "X = 1\n")  # leading underscore: not a plugin
    (tmp_path / "root").mkdir()
    code, _, out = run(root=tmp_path / "root", plugin_dirs=[plugins])
    assert code == EXIT_USAGE
    assert "oops.py: defines no class Plugin" in out


def test_missing_group_folder_contributes_nothing(tmp_path: pathlib.Path) -> None:
    (tmp_path / "root").mkdir()
    code, _, out = run(root=tmp_path / "root", groups=("core", "no_such_group_yet"))
    assert code == EXIT_OK, out


def test_append_outside_the_transaction_is_refused(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "early", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.VALIDATION)
            def _too_early(self):
                self.transaction.append(engine.FileWrite("/etc/x", b"x"))
    """)
    root = tmp_path / "root"
    root.mkdir()
    code, _, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_FAILED
    assert "write /etc/x (1 bytes): the transaction is not open" in out
    assert not (root / "etc").exists()


def test_plugin_bug_shows_traceback_only_with_debug(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "buggy", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.MISC)
            def _boom(self):
                self.transaction.append(engine.FileWrite("/etc/x", b"x"))
                raise RuntimeError("boom")
    """)
    root = tmp_path / "root"
    root.mkdir()
    code, _, out = run(root=root, plugin_dirs=[plugins])
    assert code == EXIT_FAILED
    assert "error: unexpected error: RuntimeError: boom (at stage misc); rolled back 1" in out
    assert "Traceback" not in out
    assert not (root / "etc").exists()
    code, runner, out = run(root=root, plugin_dirs=[plugins], debug=True)
    assert code == EXIT_FAILED
    assert "Traceback" in out and 'raise RuntimeError("boom")' in out
    assert runner.log_path is not None and "Traceback" in runner.log_path.read_text()


def test_group_folder_listing_and_extra_plugin_dirs(tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    group_dir = tmp_path / "fakegroup"
    write_plugin(group_dir, "first", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.MISC, name="fake.first")
            def _go(self):
                self.transaction.append(engine.FileWrite("/first", b"1"))
    """)
    custom = write_plugin(tmp_path / "bundle" / "hooks", "custom", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.MISC, after=("fake.first",))
            def _go(self):
                assert self.resolve("/first").exists()
                self.transaction.append(engine.FileWrite("/custom", b"2"))
    """)
    package = types.ModuleType("installer.plugins.fakegroup")
    package.__path__ = [str(group_dir)]
    package.extra_plugin_dirs = lambda bundle, root: [bundle / "hooks"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "installer.plugins.fakegroup", package)
    root = tmp_path / "root"
    root.mkdir()
    code, _, out = run(root=root, groups=("fakegroup",), bundle=tmp_path / "bundle")
    assert code == EXIT_OK, out
    assert (root / "first").exists() and (root / "custom").exists()
    assert custom == tmp_path / "bundle" / "hooks"
