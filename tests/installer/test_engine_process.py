"""self.run: the one way to start a process."""

from __future__ import annotations

import logging

import pytest

from installer.engine.process import check_tool, run
from installer.errors import ToolError


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    logging.getLogger("satchel").propagate = True
    with caplog.at_level(logging.DEBUG, logger="satchel"):
        yield caplog
    logging.getLogger("satchel").propagate = False


def test_runs_with_c_utf8_and_closed_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    proc = run(["sh", "-c", 'echo "$LANG/${LC_ALL:-unset}"; cat'])
    assert proc.stdout == "C.UTF-8/unset\n"


def test_input_and_env_values_are_never_logged(logs: pytest.LogCaptureFixture) -> None:
    proc = run(["sh", "-c", 'read x; echo "$x-$TOKEN"'], input="s3cret-in\n",
               env={"TOKEN": "s3cret-env"})
    assert proc.stdout == "s3cret-in-s3cret-env\n"
    text = "\n".join(r.getMessage() for r in logs.records)
    assert "+ sh -c 'read x; echo \"$x-$TOKEN\"' [env: TOKEN]" in text
    assert "s3cret" not in text
    assert "exit 0 after" in text


def test_failure_names_command_and_exit_code() -> None:
    with pytest.raises(ToolError) as info:
        run(["sh", "-c", "echo oops >&2; exit 7"])
    assert str(info.value) == "command failed with exit code 7: sh -c 'echo oops >&2; exit 7'"
    assert info.value.hint == "oops"
    assert run(["false"], check=False).returncode == 1


def test_missing_tool() -> None:
    with pytest.raises(ToolError, match="command not found: no-such-tool-xyz"):
        run(["no-such-tool-xyz"])
    with pytest.raises(ToolError, match="required tool 'no-such-tool-xyz' not found"):
        check_tool("no-such-tool-xyz")
    assert check_tool("sh").endswith("/sh")
