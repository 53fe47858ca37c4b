"""Finding pg_restore (installer.restore.database.pg_bindirs): each binary is asked
its version once per process, and a dispatcher on PATH (Debian's pg_wrapper, a Perl
script) is not run when a versioned bindir has the tool."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from installer.restore import database as restore_db

SCRIPT = """#!/bin/sh
echo run >> {calls}
echo "pg_restore (PostgreSQL) {major}.1"
"""


def _tool(path: Path, calls: Path, major: int) -> Path:
    path.write_text(SCRIPT.format(calls=calls, major=major))
    path.chmod(0o755)
    return path


def _runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:{os.environ['PATH']}")
    return d


def test_each_binary_is_asked_once_until_it_changes(bin_dir: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    tool = _tool(bin_dir / "pg_restore", calls, 98)
    assert restore_db.pg_bindirs().get(98) == bin_dir
    assert restore_db.pg_bindirs().get(98) == bin_dir
    assert _runs(calls) == 1
    time.sleep(0.01)
    _tool(tool, calls, 97)  # upgraded in place: asked again
    assert restore_db.pg_bindirs().get(97) == bin_dir
    assert _runs(calls) == 2


def test_a_dispatcher_on_path_is_not_run_when_a_versioned_bindir_has_the_tool(
        bin_dir: Path, tmp_path: Path) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_restore")) and \
            not list(Path("/usr").glob("pgsql-*/bin/pg_restore")):
        pytest.skip("no versioned PostgreSQL bindir on this machine")
    calls = tmp_path / "calls"
    wrapper = _tool(tmp_path / "pg_wrapper", calls, 99)
    (bin_dir / "pg_restore").symlink_to(wrapper)
    found = restore_db.pg_bindirs()
    assert found and 99 not in found
    assert _runs(calls) == 0
