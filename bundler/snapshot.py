"""`build.py snapshot`: a picture of a live node, everything but the base distro.

Packages come from the source root's rpmdb: the recipe selects them (names,
globs, or everything not in the declared base), and each one must be found as an
RPM file of the exact same NEVRA, with the same header digest, in the recipe's
source directories. Configuration is what changed since install (rpm's verify
data) plus the unpackaged files under the recipe's trees; their owners are
named as the source root names them (its own etc/passwd and etc/group when it is
not `/`, see bundler.owners), so the import can map them by name. The database
and the secrets are captured as for a recipe build, from the same pipeline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from bundler.build import Result, build
from bundler.components import BuildContext
from bundler.output import OutputFormat
from bundler.progress import Progress
from bundler.recipe import FileSet, Recipe
from installer.errors import InputError

CHANGED_SET = "changed-config"


class SnapshotRepo:
    """The repo component of a snapshot: exactly the RPMs found for the installed
    packages, with the same closure check and metadata as a recipe build."""

    def __init__(self, rpm_paths: list[Path], base_rpms: list[Any],
                 warnings: list[str]) -> None:
        self.rpm_paths, self.base_rpms, self.warnings = rpm_paths, base_rpms, warnings

    def check(self, ctx: BuildContext) -> None:
        pass  # everything was checked while the snapshot was planned

    def build(self, ctx: BuildContext) -> Optional[dict[str, Any]]:
        from bundler.components import rpm_repo

        if not self.rpm_paths:
            return None
        section = rpm_repo.build_from(ctx, self.rpm_paths, self.base_rpms)
        if section is not None and self.warnings:
            section["missing"] = self.warnings
        return section


def _under(path: str, tops: tuple[str, ...]) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in tops)


def plan(recipe: Recipe, source_root: Path, allow_missing: bool,
         progress: Progress) -> tuple[Recipe, SnapshotRepo]:
    """Decide what the snapshot holds; every problem is found before anything is written."""
    from bundler.snapshot_packages import (
        base_packages,
        changed_config_files,
        find_rpms,
        installed_packages,
        select,
    )

    if not source_root.is_dir():
        raise InputError(f"{source_root}: the source root is not a directory")
    p = recipe.packages
    repo = SnapshotRepo([], [], [])
    packaged: set[str] = set()
    changed: list[str] = []
    if p.include or p.everything:
        with progress.step("reading the source root's rpmdb"):
            pkgs = installed_packages(source_root)
            selected = select(pkgs, include=p.include, everything=p.everything, base=p.base)
            found = find_rpms(selected, p.sources, allow_missing=allow_missing)
            repo = SnapshotRepo(sorted(found.rpms.values()), base_packages(pkgs, p.base),
                                list(found.warnings))
        with progress.step("finding configuration changed since install"):
            changed = [c.lstrip("/") for c in changed_config_files(source_root, selected)]
            for pkg in selected:
                packaged |= {f.lstrip("/") for f in pkg.as_rpm().files}
    tops = tuple(path for fs in recipe.files for path in fs.paths)
    keep = frozenset(packaged - set(changed))
    files = [dataclasses.replace(fs, root=None, skip=keep) for fs in recipe.files]
    outside = tuple(c for c in changed if not _under(c, tops))
    if outside:
        files.append(FileSet(name=CHANGED_SET, root=None, paths=outside))
    secrets = (dataclasses.replace(recipe.secrets, root=None)
               if recipe.secrets is not None else None)
    return dataclasses.replace(recipe, files=tuple(files), secrets=secrets), repo


def snapshot(recipe: Recipe, source_root: Path, out: Path, fmt: OutputFormat, *,
             force: bool = False, allow_missing: bool = False,
             progress: Optional[Progress] = None, medium: Any = None) -> Result:
    """Plan (see `plan`) and build. The planning runs inside the build, beside the
    database dump, which depends on [database] alone: a problem the planning finds
    stops the dump, and nothing is left at the output path."""
    progress = progress or Progress()
    root = source_root.absolute()
    repo = SnapshotRepo([], [], [])

    def prepare(ctx: BuildContext) -> None:
        planned, found = plan(ctx.recipe, root, allow_missing, progress)
        repo.rpm_paths, repo.base_rpms, repo.warnings = \
            found.rpm_paths, found.base_rpms, found.warnings
        ctx.recipe = planned

    return build(recipe, out, fmt, force=force, progress=progress, source_root=root,
                 prepare=prepare, repo_component=repo, medium=medium)
