"""Bundle components: one module each (rpm_repo, database, filesets, secrets, ...).

Each component module exposes `build(ctx: BuildContext) -> dict | None`: it writes
its files into `ctx.staging` (through `Staging.open`/`copy_in`, which hash while
writing, or `Staging.adopt` for files a tool wrote) and returns its section of
the manifest (plain JSON-able data), or None when the recipe does not use it.
A component that can fail because of the outside world (a missing source dir, an
unreachable database) checks that in `check(ctx)` so the build fails before
anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundler.progress import Progress
from bundler.recipe import Recipe
from bundler.staging import Staging


@dataclass
class BuildContext:
    recipe: Recipe
    staging: Staging
    progress: Progress
    source_date_epoch: int  # clamp every mtime in archives to this
    workdir: Path  # scratch space outside the staging tree, removed after the build
    source_root: Path  # snapshot: the live node's root; build: "/"
    # What a component's check found that its build reuses (filesets: the tree walks).
    memo: dict[str, Any] = field(default_factory=dict)
