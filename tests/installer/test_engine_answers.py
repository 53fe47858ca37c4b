"""Answer files: otopi's INI form, strict types, unknown keys with file:line,
--generate-answer round trip (mode 0600, secrets left out unless asked)."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from installer import engine
from installer.engine.answers import load_answers, parse_answers, write_answers
from installer.engine.environment import Environment
from installer.errors import InputError

KEYS = {k.name: k for k in (
    engine.Key("DB/host", str, default="localhost"),
    engine.Key("DB/port", int, default=5432),
    engine.Key("DB/ssl", bool, default=True),
    engine.Key("DB/password", str, secret=True),
    engine.Key("DB/dir", "path"),
)}


def answers(tmp_path: pathlib.Path, body: str) -> pathlib.Path:
    path = tmp_path / "answers.conf"
    path.write_text(body)
    return path


def test_parse_otopi_form(tmp_path: pathlib.Path) -> None:
    path = answers(tmp_path, "# comment\n[environment:default]\nDB/host=str:db1\n"
                   "DB/port=int:6543\n\nDB/ssl=bool:0\nDB/password=str:s3cret\n"
                   "DB/dir=str:/srv/db\n")
    env = Environment(KEYS)
    load_answers(env, [path])
    assert env["DB/host"] == "db1"
    assert env["DB/port"] == 6543
    assert env["DB/ssl"] is False  # otopi would say True
    assert str(env["DB/dir"]) == "/srv/db"
    assert env.source("DB/port") == "answers"


def test_none_value(tmp_path: pathlib.Path) -> None:
    env = Environment(KEYS)
    load_answers(env, [answers(tmp_path, "[environment:default]\nDB/host=none:None\n")])
    assert env["DB/host"] is None


@pytest.mark.parametrize("body,line,message", [
    ("[environment:default]\nDB/host=str:a\nDB/hots=str:b\n", 3, "unknown key 'DB/hots'"),
    ("[environment:default]\n\nDB/port=int:many\n", 3, "expected an integer"),
    ("[environment:default]\nDB/ssl=bool:maybe\n", 2, "true/false/yes/no/1/0"),
    ("[environment:default]\nDB/port=str:5432\n", 2, "DB/port is of type int, not str"),
    ("[environment:default]\nDB/host=localhost\n", 2, "expected type:value"),
    ("[environment:default]\nDB/host\n", 2, "expected KEY=type:value"),
    ("DB/host=str:a\n", 1, "value before any section"),
    ("[otopi]\n", 1, "unknown section"),
])
def test_errors_name_file_and_line(tmp_path: pathlib.Path, body: str, line: int,
                                   message: str) -> None:
    path = answers(tmp_path, body)
    with pytest.raises(InputError) as info:
        parse_answers(path, KEYS)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_later_files_win(tmp_path: pathlib.Path) -> None:
    a = tmp_path / "a.conf"
    b = tmp_path / "b.conf"
    a.write_text("[environment:default]\nDB/host=str:a\nDB/port=int:1\n")
    b.write_text("[environment:default]\nDB/host=str:b\n")
    env = Environment(KEYS)
    load_answers(env, [a, b])
    assert (env["DB/host"], env["DB/port"]) == ("b", 1)


def test_generate_round_trip_mode_0600_without_secrets(tmp_path: pathlib.Path) -> None:
    env = Environment(KEYS)
    env.set("DB/host", "db9", source="--set")
    env.set("DB/port", 1234, source="answers")
    env.set("DB/ssl", False, source="dialog")
    env.set("DB/password", "s3cret", source="dialog")
    env.set("DB/dir", "/srv/x", source="dialog")
    out = tmp_path / "gen.conf"
    out.write_text("old")
    os.chmod(out, 0o644)
    left_out = write_answers(env, out)
    assert left_out == ["DB/password"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "s3cret" not in text and "DB/password" not in text
    again = Environment(KEYS)
    load_answers(again, [out])
    for name in ("DB/host", "DB/port", "DB/ssl", "DB/dir"):
        assert again[name] == env[name], name
    assert again["DB/password"] is None


def test_generate_with_secrets_when_asked(tmp_path: pathlib.Path) -> None:
    env = Environment(KEYS)
    env.set("DB/password", "s3cret", source="dialog")
    out = tmp_path / "gen.conf"
    assert write_answers(env, out, secrets=True) == []
    again = Environment(KEYS)
    load_answers(again, [out])
    assert again["DB/password"] == "s3cret"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_defaults_are_not_answers(tmp_path: pathlib.Path) -> None:
    env = Environment(KEYS)
    out = tmp_path / "gen.conf"
    write_answers(env, out)
    assert out.read_text().splitlines()[1:] == ["[environment:default]"]
