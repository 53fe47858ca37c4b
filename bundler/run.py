"""The one way the builder starts a process (after mkosi's run()).

argv lists only, `+ cmd` logged at debug, LANG=C.UTF-8, stdin closed unless input
is given, and a failure names the command and its exit code. Secrets never go on
a command line: callers pass them through files (PGPASSFILE, mode 0600) or `env`.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

from installer.errors import InputError, ToolError

log = logging.getLogger("satchel")

Arg = Union[str, Path]


def check_tool(name: str, hint: str) -> str:
    """Return the full path of tool `name`, or fail before any work starts."""
    path = shutil.which(name)
    if path is None:
        raise InputError(f"required tool not found: {name}", hint=hint)
    return path


def run(
    argv: Sequence[Arg],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    input: Optional[bytes] = None,
    capture: bool = False,
    check: bool = True,
    user: Optional[str] = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv; with capture=True stdout and stderr are returned, else stderr only.

    `env` is added to a clean copy of our environment; `user` runs the command
    as that user through runuser (PostgreSQL's tools refuse to run as root).
    """
    cmd = [str(a) for a in argv]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    full_env = dict(os.environ)
    full_env["LANG"] = "C.UTF-8"
    full_env.pop("LC_ALL", None)
    if env:
        full_env.update(env)
    log.debug("+ %s", shlex.join(cmd))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            env=full_env,
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    except FileNotFoundError as e:
        raise ToolError(f"cannot run {cmd[0]}: {e.strerror}") from e
    log.debug("  %s exited %d after %.2fs", cmd[0], proc.returncode, time.monotonic() - started)
    if check and proc.returncode != 0:
        detail = (proc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        tail = detail[-1] if detail else "no output"
        raise ToolError(
            f"{Path(cmd[0]).name} failed with exit code {proc.returncode}: {tail}",
            hint="run with --debug to see the full command",
        )
    return proc
