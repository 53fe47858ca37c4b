"""File sets: one pax tar (zstd) per set under files/, with a per-file index.

The index (path -> type, mode, owner by name and number, mtime, size, sha256)
goes into the manifest so the import can plan (create / replace / identical)
and audit without reading the archive twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from bundler.archive import Walk, walk, write_tree
from bundler.components import BuildContext
from bundler.owners import OwnerNames
from bundler.recipe import FileSet
from installer.errors import InputError

_CACHE = "filesets.walks"  # in ctx.memo


def _root(ctx: BuildContext, fs_root: Optional[Path]) -> Path:
    return fs_root if fs_root is not None else ctx.source_root


def _walks(ctx: BuildContext) -> list[tuple[FileSet, Walk]]:
    """Every set's members, listed once per build: check() walks, build() reuses it
    (a file that changes in between is caught while it is archived)."""
    key = (ctx.recipe.files, ctx.source_root)
    cached = ctx.memo.get(_CACHE)
    if cached is not None and cached[0][0] is key[0] and cached[0][1] == key[1]:
        return list(cached[1])
    walks = [(fs, walk(_root(ctx, fs.root), fs.paths, fs.exclude, fs.skip))
             for fs in ctx.recipe.files]
    ctx.memo[_CACHE] = (key, walks)
    return walks


def check(ctx: BuildContext) -> None:
    problems = []
    for fs, w in _walks(ctx):
        root = _root(ctx, fs.root)
        if not root.is_dir():
            problems.append(f"files[{fs.name}]: root {root} is not a directory")
            continue
        problems += [f"files[{fs.name}]: {p}" for p in w.problems]
    if problems:
        raise InputError("cannot read every file of the file sets:\n  " + "\n  ".join(problems),
                         hint="fix the permissions or add the paths to `exclude`")


def build(ctx: BuildContext) -> Optional[dict[str, Any]]:
    if not ctx.recipe.files:
        return None
    sets = []
    names = OwnerNames(ctx.source_root)  # the source's users, not the build host's
    for fs, w in _walks(ctx):
        if w.problems:
            check(ctx)
        rel = f"files/{fs.name}.tar.zst"
        with ctx.progress.step(f"archiving file set {fs.name}", total=len(w.members)) as p, \
                ctx.staging.open(rel) as out:
            index = write_tree(out.write, w.members, source_date_epoch=ctx.source_date_epoch,
                               overrides=fs.overrides, advance=p.advance, names=names)
        sets.append({
            "name": fs.name,
            "archive": rel,
            "paths": list(fs.paths),
            "entries": len(index),
            "bytes": sum(e.get("size", 0) for e in index.values()),
            "skipped": w.skipped,
            "index": index,
        })
    return {"sets": sets}
