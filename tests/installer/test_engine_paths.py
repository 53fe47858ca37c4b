"""Paths under --root: nothing escapes it, through .. or symlinks."""

from __future__ import annotations

import os
import pathlib

import pytest

from installer.engine.paths import resolve_under
from installer.errors import InputError


def test_plain_and_already_resolved_paths(tmp_path: pathlib.Path) -> None:
    assert resolve_under(tmp_path, "/etc/x") == tmp_path / "etc/x"
    assert resolve_under(tmp_path, "etc/./x") == tmp_path / "etc/x"
    assert resolve_under(tmp_path, tmp_path / "etc/x") == tmp_path / "etc/x"
    assert resolve_under(tmp_path, "/etc/a/../x") == tmp_path / "etc/x"


def test_dotdot_escape_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match="escapes the root"):
        resolve_under(tmp_path, "/etc/../../outside")


def test_relative_symlink_escape_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("../../../../../../tmp", tmp_path / "etc/evil")
    with pytest.raises(InputError, match="escapes the root"):
        resolve_under(tmp_path, "/etc/evil/x")


def test_absolute_symlink_stays_inside_root(tmp_path: pathlib.Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/usr/share/conf", tmp_path / "etc/alt")
    assert resolve_under(tmp_path, "/etc/alt/x") == tmp_path / "usr/share/conf/x"
    assert resolve_under(tmp_path, "/etc/alt") == tmp_path / "usr/share/conf"
    assert resolve_under(tmp_path, "/etc/alt", follow_last=False) == tmp_path / "etc/alt"


def test_symlink_loop_is_an_error(tmp_path: pathlib.Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(InputError, match="too many levels"):
        resolve_under(tmp_path, "/a/x")
