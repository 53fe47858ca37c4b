"""Where a satchel build spends its time: one in-process build under cProfile.

    .venv/bin/python -m tests.bench.profile [--scale 16] [--job build|snapshot] [--top 25]

Prints the wall time of each component (the database runs in its own thread,
beside the others, as in a real build; a snapshot's planning, rpmdb, RPM lookup
and changed files, runs beside it too), and the cProfile of the main thread, by
own time and by cumulative time. The cluster is always stopped.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import bundler.build as pipeline
from bundler import recipe as recipes
from bundler import snapshot as snapshots
from bundler.output import OutputFormat
from bundler.progress import Progress
from tests.bench import generate, jobs, roots


class Timed:
    """A component module whose build() reports its wall time."""

    def __init__(self, name: str, module: Any, times: dict[str, float]) -> None:
        self._name, self._module, self._times = name, module, times
        if hasattr(module, "check"):
            self.check = module.check

    def build(self, ctx: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return self._module.build(ctx, *args, **kwargs)
        finally:
            self._times[self._name] = time.monotonic() - started


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.profile")
    p.add_argument("--scale", type=float, default=16.0)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--job", choices=("build", "snapshot"), default="build")
    args = p.parse_args(argv)
    node = generate.generate(args.scale)
    work = Path(tempfile.mkdtemp(prefix="satchel-bench-prof-", dir="/tmp"))
    os.chmod(work, 0o711)
    times: dict[str, float] = {}
    original = pipeline._components
    try:
        with generate.database(node.params, work / "pg") as db:
            bench = jobs.Bench(node, db, work)
            source: Optional[Path] = None
            if args.job == "snapshot":
                source = roots.source_root(work / "node", node)
            recipe = recipes.load(jobs.write_recipe(
                bench, work / "recipe.toml", tree=None if source else node.tree))
            pipeline._components = lambda *a: [
                (name, Timed(name, module, times)) for name, module in original(*a)]
            prof = cProfile.Profile()
            started = time.monotonic()
            prof.enable()
            if source is not None:  # the planning runs inside, beside the dump
                snapshots.snapshot(recipe, source, work / "bundle", OutputFormat("dir"),
                                   progress=Progress(quiet=True))
            else:
                pipeline.build(recipe, work / "bundle", OutputFormat("dir"),
                               progress=Progress(quiet=True))
            prof.disable()
            total = time.monotonic() - started
    finally:
        pipeline._components = original
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.job} at scale {args.scale:g}: {total:.2f}s wall")
    for name, seconds in times.items():
        print(f"  {name:<10} {seconds:6.2f}s{'  (own thread)' if name == 'database' else ''}")
    for order in ("tottime", "cumtime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(order).print_stats(args.top)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
