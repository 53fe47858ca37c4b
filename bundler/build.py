"""The build pipeline: a recipe (or a live node) into a published bundle.

Reads top to bottom like the build itself: check everything that can fail
because of the outside world, then write each component into a staging tree
beside the output (hashing on the way), the installer, SHA256SUMS and the
manifest last, then publish. A failed or interrupted build removes its staging
tree, so nothing that looks like a bundle is left behind.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bundler import media
from bundler.components import BuildContext
from bundler.media import Medium
from bundler.output import OutputFormat, existing_outputs, publish, publish_volumes
from bundler.progress import Progress
from bundler.recipe import Recipe
from bundler.staging import Staging
from installer.errors import InputError, SatchelError

log = logging.getLogger("satchel")


@dataclass(frozen=True)
class Result:
    path: Path
    format: OutputFormat
    manifest: dict[str, Any]
    seconds: float
    volumes: tuple[Path, ...] = ()  # every volume, when built for a medium


def source_date_epoch(recipe: Recipe) -> int:
    """One source date: the recipe's, else SOURCE_DATE_EPOCH, else now."""
    if recipe.bundle.source_date_epoch is not None:
        return recipe.bundle.source_date_epoch
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise InputError(f"SOURCE_DATE_EPOCH={env!r} is not a number of seconds") from None
    return int(time.time())


def output_path(out: Path, fmt: OutputFormat) -> Path:
    ext = fmt.extension()
    return out if not ext or out.name.endswith(ext) else out.with_name(out.name + ext)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "satchel"


def build_spec_packages(recipe: Recipe, sde: int, progress: Progress) -> Recipe:
    """Build the recipe's spec files with rpmbuild (cached) and add them as a source."""
    if not recipe.packages.specs:
        return recipe
    from bundler.rpmbuild import build_specs

    specs: list[Path] = []
    for pattern in recipe.packages.specs:
        found = sorted(pattern.parent.glob(pattern.name))
        if not found:
            raise InputError(f"{recipe.path}: packages.specs: no spec file matches {pattern}")
        specs += found
    outdir = cache_dir() / "rpms" / f"{recipe.bundle.name}-{recipe.bundle.version}"
    with progress.step(f"building {len(specs)} spec file(s) with rpmbuild"):
        build_specs(specs, outdir, sde)
    packages = dataclasses.replace(recipe.packages,
                                   sources=(*recipe.packages.sources, outdir))
    return dataclasses.replace(recipe, packages=packages)


def _components(repo: Any = None) -> list[tuple[str, Any]]:
    """The components in build order; `repo` replaces rpm_repo (snapshot)."""
    from bundler.components import database, filesets, hooks, rpm_repo, secrets
    return [("repo", repo or rpm_repo), ("hooks", hooks), ("database", database),
            ("filesets", filesets), ("secrets", secrets)]


def build(recipe: Recipe, out: Path, fmt: OutputFormat, *, force: bool = False,
          progress: Optional[Progress] = None, source_root: Path = Path("/"),
          prepare: Optional[Callable[[BuildContext], None]] = None,
          repo_component: Any = None, medium: Optional[Medium] = None) -> Result:
    started = time.monotonic()
    progress = progress or Progress()
    out = output_path(out.absolute(), fmt)
    if (out.exists() or out.is_symlink()) and not force:
        raise InputError(f"{out} already exists", hint="use --force to replace it")
    if medium is not None and existing_outputs(out, fmt) and not force:
        raise InputError(f"{existing_outputs(out, fmt)[0]} already exists",
                         hint="use --force to replace it")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: the output's directory does not exist")
    sde = source_date_epoch(recipe)
    recipe = build_spec_packages(recipe, sde, progress)
    staging_dir = out.with_name(f".{out.name}.staging-{os.getpid()}")
    workdir = Path(tempfile.mkdtemp(prefix="satchel-build-"))
    ctx = BuildContext(recipe=recipe, staging=Staging(staging_dir), progress=progress,
                       source_date_epoch=sde, workdir=workdir, source_root=source_root)
    components = _components(repo_component)
    try:
        if prepare is not None:
            prepare(ctx)
        with progress.step("checking inputs"):
            for _, module in components:
                if hasattr(module, "check"):
                    module.check(ctx)
        staging_dir.mkdir()
        sections = _build_components(ctx, components)
        from bundler.components import installer_zipapp
        sections["installer"] = installer_zipapp.build(ctx)
        sections["services"] = {"enable": list(recipe.services.enable)}
        for name in ("setup", "vmcatcher"):  # answered on the target from the manifest
            if name in recipe.plugins:
                sections[name] = json.loads(json.dumps(dict(recipe.plugins[name])))
        from bundler import manifest
        doc = manifest.write(ctx, sections, socket.gethostname())
        volumes: tuple[Path, ...] = ()
        if medium is not None:  # the whole layout first: a medium too small writes nothing
            layout = media.plan(staging_dir, doc, medium, recipe.bundle.label)
            volumes = tuple(publish_volumes(staging_dir, layout, out, fmt, sde=sde,
                                            progress=progress, force=force))
            final = volumes[0]
        else:
            final = publish(staging_dir, out, fmt, label=recipe.bundle.label,
                            top=f"{recipe.bundle.name}-{recipe.bundle.version}", sde=sde,
                            progress=progress, force=force)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise SatchelError(f"out of disk space while building {out.name}; "
                               "the partial bundle was removed",
                               hint=f"free space on the file system of {out.parent}") from e
        raise
    finally:
        if staging_dir.exists():
            shutil.rmtree(staging_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return Result(final, fmt, doc, time.monotonic() - started, volumes)


def _build_components(ctx: BuildContext, components: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build every component; the database dump runs beside the file archiving."""
    sections: dict[str, Any] = {}
    errors: list[BaseException] = []

    def in_thread(name: str, module: Any) -> None:
        try:
            sections[name] = module.build(ctx)
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    threads = []
    # The dump starts first: it runs on the server and in pg_dump, beside our work.
    for name, module in components:
        if name == "database" and ctx.recipe.database is not None:
            t = threading.Thread(target=in_thread, args=(name, module), name="pg_dump")
            t.start()
            threads.append(t)
    for name, module in components:
        if name != "database":
            try:
                if name == "hooks":  # checks its packages.d lists against the repo
                    sections[name] = module.build(ctx, repo=sections.get("repo"))
                else:
                    sections[name] = module.build(ctx)
            except BaseException:
                for t in threads:
                    t.join()
                raise
        elif ctx.recipe.database is None:
            sections[name] = None
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sections
