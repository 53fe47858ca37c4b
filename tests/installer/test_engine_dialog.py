"""Dialogs: human (prompt with default, hidden secrets), machine JSON lines,
unattended (a missing answer is an error naming the key, before any change)."""

from __future__ import annotations

import io
import json
import pathlib

import pytest

from installer import engine
from installer.engine.dialog import HumanDialog, MachineDialog
from installer.engine.environment import Environment
from installer.errors import EXIT_USAGE, InputError
from tests.installer.util import run, write_plugin


def env() -> Environment:
    return Environment({k.name: k for k in (
        engine.Key("A/name", str, default="alice", doc="Your name"),
        engine.Key("A/port", int, default=80),
        engine.Key("A/ssl", bool),
        engine.Key("A/pw", str, secret=True),
    )})


def test_human_prompt_shows_default_and_empty_line_takes_it() -> None:
    out = io.StringIO()
    d = HumanDialog(env(), stdin=io.StringIO("\n"), stdout=out)
    assert d.ask("A/name") == "alice"
    assert out.getvalue() == "Your name [alice]: "
    assert d.env.source("A/name") == "dialog"


def test_human_reasks_after_a_bad_value() -> None:
    out = io.StringIO()
    d = HumanDialog(env(), stdin=io.StringIO("maybe\nyes\n"), stdout=out)
    assert d.ask("A/ssl", "Use SSL") is True
    assert "invalid answer for A/ssl" in out.getvalue()
    assert out.getvalue().count("Use SSL: ") == 2


def test_human_secret_uses_hidden_input_and_never_echoes() -> None:
    out = io.StringIO()
    prompts = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return "hunter2"

    d = HumanDialog(env(), stdin=io.StringIO(""), stdout=out, getpass_fn=fake_getpass)
    assert d.ask("A/pw", "Password") == "hunter2"
    assert prompts == ["Password: "]
    assert "hunter2" not in out.getvalue()


def test_human_closed_input_is_an_error_naming_the_key() -> None:
    d = HumanDialog(env(), stdin=io.StringIO(""), stdout=io.StringIO())
    with pytest.raises(InputError, match="no answer for A/ssl"):
        d.ask("A/ssl")


def test_given_answers_are_not_asked_again() -> None:
    e = env()
    e.set("A/port", 8080, source="--set")
    d = HumanDialog(e, stdin=io.StringIO(""), stdout=io.StringIO())
    assert d.ask("A/port") == 8080


def test_confirm() -> None:
    d = HumanDialog(env(), stdin=io.StringIO("no\n\n"), stdout=io.StringIO())
    assert d.confirm("Go?", default=True) is False
    assert d.confirm("Go?", default=True) is True
    assert HumanDialog(env(), unattended=True).confirm("Go?", default=True) is True


def test_machine_json_lines() -> None:
    out = io.StringIO()
    d = MachineDialog(env(), stdin=io.StringIO("8443\nsecret\nyes\n"), stdout=out)
    assert d.ask("A/port", "Port") == 8443
    assert d.ask("A/pw", "Password") == "secret"
    assert d.confirm("Proceed?", default=False) is True
    d.note("hello")
    d.error(InputError("bad", hint="fix it"))
    msgs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert msgs[0] == {"type": "question", "key": "A/port", "prompt": "Port",
                       "value_type": "int", "default": 80, "secret": False, "choices": None}
    assert msgs[1]["secret"] is True and msgs[1]["default"] is None
    assert msgs[2] == {"type": "confirm", "name": "confirm", "prompt": "Proceed?",
                       "default": False}
    assert msgs[3] == {"type": "note", "text": "hello"}
    assert msgs[4] == {"type": "error", "message": "bad", "hint": "fix it", "exit_code": 2}
    assert "secret" not in out.getvalue().replace('"secret"', "")


def test_machine_invalid_answer_is_reported_then_asked_again() -> None:
    out = io.StringIO()
    d = MachineDialog(env(), stdin=io.StringIO("x\n7\n"), stdout=out)
    assert d.ask("A/port") == 7
    types = [json.loads(line)["type"] for line in out.getvalue().splitlines()]
    assert types == ["question", "invalid", "question"]


WRITER = """
    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("W/token", str, required=True, secret=True),
                engine.Key("W/owner", str))

        @engine.event(stage=Stages.CUSTOMIZATION)
        def _ask(self):
            self.dialog.ask("W/owner", "Owner")

        @engine.event(stage=Stages.MISC)
        def _write(self):
            self.transaction.append(engine.FileWrite("/etc/w.conf", b"x"))
"""


def test_unattended_missing_answer_names_key_before_any_change(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "writer", WRITER)
    root = tmp_path / "root"
    root.mkdir()
    code, _runner, out = run(root=root, plugin_dirs=[plugins], unattended=True)
    assert code == EXIT_USAGE
    assert "no value for W/owner in unattended mode" in out
    assert not (root / "etc").exists()


def test_unattended_missing_required_key_is_named(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "writer", WRITER)
    root = tmp_path / "root"
    root.mkdir()
    code, _, out = run(root=root, plugin_dirs=[plugins], settings=["W/owner=me"])
    assert code == EXIT_USAGE
    assert "no value for required key(s) W/token" in out
    assert not (root / "etc").exists()


def test_machine_dialog_run_reports_error_as_json(tmp_path: pathlib.Path) -> None:
    plugins = write_plugin(tmp_path / "p", "writer", WRITER)
    root = tmp_path / "root"
    root.mkdir()
    out, err = io.StringIO(), io.StringIO()
    code, _, _ = run(root=root, plugin_dirs=[plugins], dialog="machine", unattended=False,
                     stdin=io.StringIO("bob\n"), stdout=out, stderr=err)
    assert code == EXIT_USAGE
    msgs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert msgs[0]["type"] == "question" and msgs[0]["key"] == "W/owner"
    errors = [m for m in msgs if m["type"] == "error"]
    assert errors and "W/token" in errors[0]["message"] and errors[0]["exit_code"] == 2
