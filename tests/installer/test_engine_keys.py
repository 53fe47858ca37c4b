"""Typed keys and the environment: strict parsing, type-checked assignment."""

from __future__ import annotations

import logging
import pathlib

import pytest

from installer import engine
from installer.engine.environment import Environment
from installer.engine.keys import parse_setting
from installer.errors import InputError


@pytest.mark.parametrize("text,value", [
    ("true", True), ("yes", True), ("1", True), ("TRUE", True), ("Yes", True),
    ("false", False), ("no", False), ("0", False), (" No ", False)])
def test_bool_accepts_the_six_words(text: str, value: bool) -> None:
    assert engine.parse_bool(text) is value


@pytest.mark.parametrize("text", ["", "y", "n", "on", "off", "2", "truthy", "None"])
def test_bool_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="true/false/yes/no/1/0"):
        engine.parse_bool(text)


def test_parse_per_type() -> None:
    assert engine.Key("a", int).parse("42") == 42
    assert engine.Key("a", "path").parse("/etc/x") == pathlib.PurePosixPath("/etc/x")
    assert engine.Key("a", pathlib.Path).kind == "path"
    with pytest.raises(ValueError, match="expected an integer"):
        engine.Key("a", int).parse("4.2")
    with pytest.raises(ValueError, match="not one of"):
        engine.Key("a", str, choices=("x", "y")).parse("z")


def test_unsupported_type_and_bad_default_are_errors() -> None:
    with pytest.raises(ValueError, match="unsupported key type"):
        engine.Key("a", float)
    with pytest.raises(TypeError, match="expected int"):
        engine.Key("a", int, default="5")


def test_environment_assignment_is_type_checked() -> None:
    env = Environment({"N": engine.Key("N", int, default=1), "B": engine.Key("B", bool)})
    env["N"] = 5
    assert env["N"] == 5
    with pytest.raises(TypeError, match="N: expected int, got str"):
        env["N"] = "5"
    with pytest.raises(TypeError, match="N: expected int, got bool"):
        env["N"] = True
    with pytest.raises(TypeError, match="B: expected bool, got int"):
        env["B"] = 1
    with pytest.raises(KeyError, match="undeclared environment key 'X'"):
        env["X"] = 1
    with pytest.raises(KeyError, match="undeclared"):
        env["X"]


def test_secret_changes_are_logged_masked(caplog: pytest.LogCaptureFixture) -> None:
    env = Environment({"DB/password": engine.Key("DB/password", str, secret=True),
                       "DB/user": engine.Key("DB/user", str)})
    with caplog.at_level(logging.DEBUG, logger="satchel.env"):
        logging.getLogger("satchel").propagate = True
        try:
            env["DB/password"] = "hunter2"
            env["DB/user"] = "hunter2"  # same text, not secret: shown
        finally:
            logging.getLogger("satchel").propagate = False
    lines = [r.getMessage() for r in caplog.records]
    assert any("DB/password = ***" in line for line in lines)
    assert any("DB/user = 'hunter2'" in line for line in lines)
    assert not any("hunter2" in line for line in lines if "DB/password" in line)


def test_set_parses_by_key_type_and_names_unknown_keys() -> None:
    keys = {"P": engine.Key("P", int), "F": engine.Key("F", bool)}
    assert parse_setting(keys, "P=8080", "--set")[1] == 8080
    assert parse_setting(keys, "F=no", "--set")[1] is False
    with pytest.raises(InputError, match="--set: F: expected one of"):
        parse_setting(keys, "F=maybe", "--set")
    with pytest.raises(InputError, match="unknown key 'Q'"):
        parse_setting(keys, "Q=1", "--set")
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_setting(keys, "P", "--set")
