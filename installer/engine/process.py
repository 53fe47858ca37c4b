"""The one way to start a process (mkosi's run(), for the installer)."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from installer.errors import ToolError

log = logging.getLogger("satchel.run")
Arg = Union[str, "os.PathLike[str]"]


def check_tool(name: str, hint: Optional[str] = None) -> str:
    """The full path of `name` on PATH, or ToolError with a hint."""
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"required tool {name!r} not found on PATH",
                        hint=hint or f"install the package that provides {name}")
    return found


def run(argv: Sequence[Arg], *, input: Union[str, bytes, None] = None,
        env: Optional[Mapping[str, str]] = None, cwd: Optional[Arg] = None,
        check: bool = True, capture: bool = True, timeout: Optional[float] = None,
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run `argv` (a list, never a shell string) and return the CompletedProcess.

    Logs `+ cmd` and its duration; LANG=C.UTF-8; stdin closed unless `input` (or
    a `stdin` file object) is given; stdout/stderr captured as text unless capture=False. `env` adds
    variables (their names are logged, never their values; the input is never
    logged: pass secrets there or in 0600 files, never in argv). With check, a
    non-zero exit is a ToolError naming the command and its exit code.
    """
    args = [os.fspath(a) for a in argv]
    if not args:
        raise ValueError("run() needs a command")
    cmd = shlex.join(args)
    full_env: Dict[str, str] = dict(os.environ)
    full_env.pop("LC_ALL", None)
    full_env["LANG"] = "C.UTF-8"
    if env:
        full_env.update(env)
    extra = f" [env: {', '.join(sorted(env))}]" if env else ""
    log.info("+ %s%s", cmd, extra)
    text = not isinstance(input, bytes)
    kw: Dict[str, Any] = dict(kwargs)
    if input is None:
        kw.setdefault("stdin", subprocess.DEVNULL)  # or a pipe the caller passes
    else:
        kw["input"] = input
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
    start = time.monotonic()
    try:
        proc = subprocess.run(args, env=full_env, cwd=cwd, timeout=timeout,
                              text=text, check=False, **kw)
    except FileNotFoundError:
        raise ToolError(f"command not found: {args[0]}",
                        hint=f"install the package that provides {args[0]}") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"command timed out after {timeout}s: {cmd}") from None
    elapsed = time.monotonic() - start
    log.info("  exit %d after %.2fs: %s", proc.returncode, elapsed, args[0])
    if check and proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else (
            proc.stderr.decode("utf-8", "replace") if proc.stderr else "")
        tail = err.strip().splitlines()[-5:] if err else []
        for line in tail:
            log.error("  %s", line)
        raise ToolError(f"command failed with exit code {proc.returncode}: {cmd}",
                        hint=tail[-1] if tail else None)
    return proc
