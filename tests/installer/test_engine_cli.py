"""The command line: --help, exit codes, the log file (secrets masked by key),
dry run, --generate-answer, refusing / as non-root."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from installer import cli
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from tests.installer.util import write_plugin

SECRETIVE = """
    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("S/password", str, secret=True, required=True),
                engine.Key("S/user", str, default="admin"),
                engine.Key("S/note", str))

        @engine.event(stage=Stages.VALIDATION)
        def _plan(self):
            self.plan("write /etc/s.conf")

        @engine.event(stage=Stages.MISC)
        def _write(self):
            self.run(["sh", "-c", 'test "$PW" = "$0"', self.env["S/user"]],
                     env={"PW": self.env["S/user"]})
            self.transaction.append(engine.FileWrite(
                "/etc/s.conf", ("user=" + self.env["S/user"] + "\\n").encode(), 0o600))
"""


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for line in ("0  done", "1  failed and rolled back", "2  usage error",
                 "3  refused by validation", "4  locked", "5  rollback incomplete"):
        assert line in out
    assert cli.main(["demo", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "--generate-answer" in out and "5  rollback incomplete" in out


def test_usage_errors_exit_2(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["nosuchaction"]) == EXIT_USAGE
    assert cli.main(["demo", "--root", str(tmp_path), "--set", "NO/such=1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "error: --set: unknown key 'NO/such'" in err
    assert cli.main(["demo", "--root", str(tmp_path / "missing")]) == EXIT_USAGE


def test_bad_fail_at_is_a_usage_error(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_FAIL_AT", "nowhere")
    assert cli.main(["demo", "--root", str(tmp_path), "--unattended"]) == EXIT_USAGE
    assert "SATCHEL_FAIL_AT: unknown stage 'nowhere'" in capsys.readouterr().err


def test_log_file_masks_secrets_and_path_is_printed(tmp_path: pathlib.Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    plugins = write_plugin(tmp_path / "p", "secretive", SECRETIVE)
    code = cli.main(["demo", "--root", str(root), "--unattended", "--plugin-dir", str(plugins),
                     "--set", "S/password=Tr0ub4dor", "--set", "S/note=admin is Tr0ub"])
    out = capsys.readouterr()
    assert code == EXIT_OK, out.err
    logs = list((root / "var/log/satchel").glob("demo-*.log"))
    assert len(logs) == 1
    assert f"log: {logs[0]}" in out.out
    text = logs[0].read_text()
    assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    assert "Tr0ub4dor" not in text
    assert "S/password = ***" in text
    assert "S/note = 'admin is Tr0ub'" in text  # masked by key, not by substring
    assert "+ sh -c 'test \"$PW\" = \"$0\"' admin [env: PW]" in text
    assert "exit 0 after" in text
    assert "done: write /etc/s.conf" in text


def test_failed_command_is_named_and_rolled_back(tmp_path: pathlib.Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    plugins = write_plugin(tmp_path / "p", "failing", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            @engine.event(stage=Stages.MISC)
            def _go(self):
                self.transaction.append(engine.FileWrite("/etc/a", b"a"))
                self.run(["sh", "-c", "echo broken >&2; exit 3"])
    """)
    code = cli.main(["demo", "--root", str(root), "--unattended", "--plugin-dir", str(plugins),
                     "--set", "DEMO/message=hi"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "error: command failed with exit code 3: sh -c 'echo broken >&2; exit 3'" in err
    assert "hint: broken" in err
    assert not (root / "etc").exists()


def test_dry_run_prints_plan_and_changes_nothing(tmp_path: pathlib.Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    answers = tmp_path / "gen.conf"
    code = cli.main(["demo", "--root", str(root), "--unattended", "--dry-run",
                     "--set", "DEMO/message=bonjour", "--generate-answer", str(answers)])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "write /etc/satchel-demo/motd (8 bytes)" in out
    assert "dry run: nothing was changed" in out
    assert list(root.iterdir()) == []
    assert "DEMO/message=str:bonjour" in answers.read_text()
    assert stat.S_IMODE(answers.stat().st_mode) == 0o600


def test_generated_answers_replay_the_run(tmp_path: pathlib.Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    plugins = write_plugin(tmp_path / "p", "secretive", SECRETIVE)
    answers = tmp_path / "gen.conf"
    assert cli.main(["demo", "--root", str(root), "--unattended", "--plugin-dir", str(plugins),
                     "--set", "S/password=pw", "--set", "S/user=bob",
                     "--generate-answer", str(answers)]) == EXIT_OK
    text = answers.read_text()
    assert "S/user=str:bob" in text and "pw" not in text.replace("S/password", "")
    capsys.readouterr()
    # without the secret the replay is refused, naming the key; with it, it runs
    assert cli.main(["demo", "--root", str(root), "--unattended", "--plugin-dir", str(plugins),
                     "--answers", str(answers)]) == EXIT_USAGE
    assert "S/password" in capsys.readouterr().err
    assert cli.main(["demo", "--root", str(root), "--unattended", "--plugin-dir", str(plugins),
                     "--answers", str(answers), "--set", "S/password=pw"]) == EXIT_OK
    assert (root / "etc/s.conf").read_text() == "user=bob\n"


def test_non_root_user_is_refused_on_slash(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["demo", "--root", "/", "--unattended"]) == EXIT_REFUSED
    assert "refusing to change / as a non-root user" in capsys.readouterr().err


def test_cancel_at_confirmation_is_refused(tmp_path: pathlib.Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO("\nno\n"))
    assert cli.main(["demo", "--root", str(tmp_path)]) == EXIT_REFUSED
    out = capsys.readouterr()
    assert "Plan of changes:" in out.out and "Proceed with these changes?" in out.out
    assert "cancelled at confirmation" in out.err
    assert not (tmp_path / "etc").exists()


def test_find_bundle(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "install").write_text("")
    monkeypatch.setattr("sys.argv", [str(tmp_path / "install")])
    assert cli.find_bundle(None) is None
    (tmp_path / "manifest.json").write_text("{}")
    assert cli.find_bundle(None) == tmp_path
    assert cli.find_bundle("/elsewhere") == pathlib.Path("/elsewhere")


def test_action_can_add_its_own_options(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from installer.engine import actions

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-d", dest="drop_db", action="store_true", help="drop the database")

    def settings(args: argparse.Namespace) -> dict:
        return {"X/drop_db": "yes" if args.drop_db else "no"}

    monkeypatch.setitem(actions.ACTIONS, "xaction", actions.Action(
        "xaction", (), "test action", add_arguments=add, settings_from_args=settings))
    plugins = write_plugin(tmp_path / "p", "x", """
        from installer import engine
        from installer.engine import Stages

        class Plugin(engine.PluginBase):
            KEYS = (engine.Key("X/drop_db", bool, default=False),)

            @engine.event(stage=Stages.VALIDATION)
            def _show(self):
                self.dialog.note("drop_db=%s" % self.env["X/drop_db"])
    """)
    args = ["xaction", "--root", str(tmp_path), "--unattended", "--dry-run",
            "--plugin-dir", str(plugins)]
    assert cli.main([*args, "-d"]) == EXIT_OK
    assert "drop_db=True" in capsys.readouterr().out
    assert cli.main(args) == EXIT_OK
    assert "drop_db=False" in capsys.readouterr().out
    assert "-d" in (cli.main(["xaction", "--help"]), capsys.readouterr().out)[1]
