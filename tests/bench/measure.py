"""Run one command and measure it: wall time, CPU time, peak RSS, bytes written.

Method (also written into the JSON, `method`):

- wall: time.monotonic() around fork/exec .. reap.
- cpu: user + sys from os.wait4() of the command, which covers the command and
  every descendant it reaped (a shell's pipeline, pg_dump under build.py). The
  PostgreSQL server's backends are not our descendants: their CPU is not counted,
  on either side.
- peak RSS, two figures:
  `rss_max`: the kernel's high-water mark (ru_maxrss) of the largest single process
  of the tree (exact; for a shell script: its biggest command). It is read by GNU
  time (/usr/bin/time -f %M), which starts the command: the wait4 of a child we fork
  ourselves would report the harness's own RSS, which the child had before exec.
  `rss_tree`: the largest sum of the RSS of every live process of the tree,
  sampled from /proc every 20 ms (approximate: short peaks can be missed; memory
  shared between processes counts twice; GNU time's ~2 MiB is included).
- bytes written: the apparent size of every regular file under the outputs after
  the run.
- load: the 1-minute load average when the run started (other work on the machine
  inflates wall times; compare it with the number of cores).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PAGE = os.sysconf("SC_PAGE_SIZE")
TIME = "/usr/bin/time"  # GNU time (Debian: apt-get install time)
SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class Command:
    """One side of a job: what to run, and what it writes."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Optional[Path] = None
    outputs: tuple[Path, ...] = ()  # removed before each run; their size is measured
    # Run (untimed) after the outputs are removed, before each run: a fresh root,
    # a fresh target database.
    reset: Optional[Callable[[], None]] = None


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    user: float
    sys: float
    rss_max: int  # bytes
    rss_tree: int  # bytes
    written: int  # bytes
    load: float = 0.0  # 1-minute load average at the start


class CommandFailed(RuntimeError):
    pass


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tree_rss(pid: int) -> int:
    """The summed RSS of pid and all its descendants, in bytes (0 once it is gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm", encoding="ascii") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        todo += _children(p)
    return total


def size_of(paths: tuple[Path, ...]) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            for dirpath, _, names in os.walk(p):
                for n in names:
                    full = os.path.join(dirpath, n)
                    if not os.path.islink(full):
                        total += os.path.getsize(full)
    return total


def run(cmd: Command, log: Path) -> Sample:
    """Run `cmd` (stdout and stderr to `log`), measure it; CommandFailed on exit != 0."""
    env = {**os.environ, "LANG": "C.UTF-8", **cmd.env}
    rss_file = log.with_suffix(".maxrss")
    argv = [TIME, "-f", "%M", "-o", str(rss_file), *cmd.argv]
    load = os.getloadavg()[0]
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cmd.cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                peak[0] = max(peak[0], tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            done.set()
            sampler.join()
        wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise CommandFailed(f"{' '.join(cmd.argv)} exited with {proc.returncode}: "
                            + " | ".join(tail))
    rss_max = int(rss_file.read_text().split()[-1]) * 1024
    return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, user=usage.ru_utime,
                  sys=usage.ru_stime, rss_max=rss_max, rss_tree=max(peak[0], rss_max),
                  written=size_of(cmd.outputs), load=load)
