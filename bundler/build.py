"""The build pipeline: a recipe (or a live node) into a published bundle.

Reads top to bottom like the build itself: check everything that can fail
because of the outside world, then write each component into a staging tree
beside the output (hashing on the way), the installer, SHA256SUMS and the
manifest last, then publish. A failed or interrupted build removes its staging
tree, so nothing that looks like a bundle is left behind.

The database dump depends on the recipe's [database] alone, so it goes first: its
check and then the dump run in a thread from the start, beside a snapshot's
planning, the other checks and the other components. It writes only its files in
the staging tree (the one exception to "nothing is written before every check has
passed"), and any failure elsewhere stops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib
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


class _Lazy:
    """A component module, imported when first used: the database dump starts
    before the imports of the others (rpm, createrepo_c, the hook engine) are done."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(f"bundler.components.{self._name}"), attr)


def _needed(ctx: BuildContext, name: str) -> bool:
    """The hooks component has nothing to do without the recipe's [hooks] section:
    it is neither imported (the hook engine) nor called then; its section is None."""
    return name != "hooks" or name in ctx.recipe.plugins


def _components(repo: Any = None) -> list[tuple[str, Any]]:
    """The components in build order; `repo` replaces rpm_repo (snapshot)."""
    return [("repo", repo or _Lazy("rpm_repo")), ("hooks", _Lazy("hooks")),
            ("database", _Lazy("database")), ("filesets", _Lazy("filesets")),
            ("secrets", _Lazy("secrets"))]


def build(recipe: Recipe, out: Path, fmt: OutputFormat, *, force: bool = False,
          progress: Optional[Progress] = None, source_root: Path = Path("/"),
          prepare: Optional[Callable[[BuildContext], None]] = None,
          repo_component: Any = None, medium: Optional[Medium] = None) -> Result:
    """Build a bundle. `prepare(ctx)` (a snapshot's planning) runs before the checks,
    beside the database dump, and may replace `ctx.recipe` (but not its [database])."""
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
    staging_dir = out.with_name(f".{out.name}.staging-{os.getpid()}")
    workdir = Path(tempfile.mkdtemp(prefix="satchel-build-"))
    ctx = BuildContext(recipe=recipe, staging=Staging(staging_dir), progress=progress,
                       source_date_epoch=sde, workdir=workdir, source_root=source_root)
    components = _components(repo_component)
    dump: Optional[_Database] = None
    try:
        try:
            staging_dir.mkdir()
            # The dump first (see the module's docstring); nothing else is written
            # before every check has passed, its own included.
            if recipe.database is not None:
                dump = _Database(ctx, dict(components)["database"])
            if prepare is not None:
                prepare(ctx)
            ctx.recipe = build_spec_packages(ctx.recipe, sde, progress)
            with progress.step("checking inputs"):
                for name, module in components:
                    if (_needed(ctx, name) and not (name == "database" and dump)
                            and hasattr(module, "check")):
                        module.check(ctx)
                if dump is not None:
                    dump.checked()
            sections = _build_components(ctx, components, dump)
        except BaseException:
            if dump is not None:
                dump.abort()
            raise
        from bundler.components import installer_zipapp
        sections["installer"] = installer_zipapp.build(ctx)
        sections["services"] = {"enable": list(ctx.recipe.services.enable)}
        for name in ("setup", "vmcatcher"):  # answered on the target from the manifest
            if name in ctx.recipe.plugins:
                sections[name] = json.loads(json.dumps(dict(ctx.recipe.plugins[name])))
        from bundler import manifest
        doc = manifest.write(ctx, sections, socket.gethostname())
        volumes: tuple[Path, ...] = ()
        if medium is not None:  # the whole layout first: a medium too small writes nothing
            layout = media.plan(staging_dir, doc, medium, ctx.recipe.bundle.label)
            volumes = tuple(publish_volumes(staging_dir, layout, out, fmt, sde=sde,
                                            progress=progress, force=force))
            final = volumes[0]
        else:
            final = publish(staging_dir, out, fmt, label=ctx.recipe.bundle.label,
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


class _Database:
    """The database component in its own thread: its check, then its dump.

    `checked()` waits for the check and raises what it found; `finish()` waits for
    the dump and returns its manifest section; `abort()` stops the dump (a failure
    elsewhere) and never raises. A stand-in module without `start` (tests, the
    profiler) runs its `build(ctx)` here instead, and cannot be stopped early.
    """

    def __init__(self, ctx: BuildContext, module: Any) -> None:
        # Its own context: a snapshot's planning replaces ctx.recipe meanwhile.
        self._ctx = dataclasses.replace(ctx)
        # What the thread calls, and what the check imports on its first call (the
        # PostgreSQL lookup), imported here: two threads importing the same modules
        # at once can fail with a deadlock on Python's module locks.
        self._check = getattr(module, "check", None)
        self._start = getattr(module, "start", None)
        self._build = module.build
        import installer.restore.database  # noqa: F401
        self._lock = threading.Lock()
        self._checked = threading.Event()
        self._check_error: Optional[BaseException] = None
        self._error: Optional[BaseException] = None
        self._pending: Any = None
        self._aborted = False
        self._section: Any = None
        self._thread = threading.Thread(target=self._run, name="database", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self._check is not None:
                self._check(self._ctx)
        except BaseException as e:  # raised by checked() in the main thread
            self._check_error = e
            return
        finally:
            self._checked.set()
        try:
            if self._start is None:
                self._section = self._build(self._ctx)
                return
            with self._lock:
                if self._aborted:
                    return
                self._pending = self._start(self._ctx)
            self._section = self._pending.finish()
        except BaseException as e:  # raised by finish() in the main thread
            self._error = e

    def checked(self) -> None:
        self._checked.wait()
        if self._check_error is not None:
            raise self._check_error

    def finish(self) -> Any:
        self._thread.join()
        self.checked()
        if self._error is not None:
            raise self._error
        return self._section

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            pending = self._pending
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.abort()
        self._thread.join()


def _build_components(ctx: BuildContext, components: list[tuple[str, Any]],
                      dump: Optional[_Database]) -> dict[str, Any]:
    """Build every component; the database dump (already running) is waited for last."""
    sections: dict[str, Any] = {}
    for name, module in components:
        if name == "database" or not _needed(ctx, name):
            sections[name] = None  # the database's is filled in below
        elif name == "hooks":  # checks its packages.d lists against the repo
            sections[name] = module.build(ctx, repo=sections.get("repo"))
        else:
            sections[name] = module.build(ctx)
    if dump is not None:
        sections["database"] = dump.finish()
    return sections
