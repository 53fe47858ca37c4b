"""hooks/vdsm/: a vdsm hook set (ovirt-host-deploy's layout) from the recipe's
[hooks] section, `vdsm = "<dir>"` relative to the recipe:

    hooks.d/<hook point>/<file>   copied with its mode
    packages.d/<name>.<distro>    copied; every package it names must be in the bundle
    plugins/<name>/               copied; each `*.spec` in it is built with rpmbuild
                                  (source date, reproducible) and its RPMs are put in
                                  the plugin's folder instead of the spec

check() reads the directory (names without `..`, `/` or a leading dot; hooks and
lists regular files; a plugin folder holds an __init__.py), so a bad hook set fails
the build before anything is written. build() checks the packages.d lists against
the packages the bundle carries: the repo section when the pipeline passes it, else
the RPMs rpm_repo staged (so this component must come after "repo").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Optional

from bundler.components import BuildContext
from installer.errors import InputError
from installer.plugins.hooks._layout import BUNDLE_DIR, SET_NAME, HookSet, check_lists, scan

__all__ = ["build", "check", "check_lists"]


def _source(ctx: BuildContext) -> Optional[Path]:
    section = ctx.recipe.plugins.get("hooks")
    if not section or SET_NAME not in section:
        return None
    return ctx.recipe.base_dir / str(section[SET_NAME])


def _scan(ctx: BuildContext) -> Optional[HookSet]:
    src = _source(ctx)
    if src is None:
        return None
    hookset, problems = scan(src)
    if problems:
        raise InputError(f"{ctx.recipe.path}: hooks.{SET_NAME} = {src}:\n  "
                         + "\n  ".join(problems), hint="fix the hook set and build again")
    return hookset


def check(ctx: BuildContext) -> None:
    _scan(ctx)


def _staged_names(ctx: BuildContext) -> list[str]:
    """Names of the RPMs rpm_repo put into the staging tree."""
    import rpm

    from bundler.components.rpm_repo import REPO, read_rpm

    ts = rpm.TransactionSet("/", rpm._RPMVSF_NOSIGNATURES)
    names = []
    for rel in sorted(ctx.staging.entries):
        if rel.startswith(f"{REPO}/Packages/") and rel.endswith(".rpm"):
            found = read_rpm(ts, ctx.staging.root / rel)
            if found is not None:
                names.append(found.name)
    return names


def _copy(ctx: BuildContext, src: Path, rel: str) -> str:
    ctx.staging.copy_in(src, rel, mode=stat.S_IMODE(os.stat(src).st_mode))
    os.utime(ctx.staging.root / rel, (ctx.source_date_epoch, ctx.source_date_epoch))
    return rel


def build(ctx: BuildContext, repo: Optional[dict[str, Any]] = None) -> Optional[dict[str, Any]]:
    hookset = _scan(ctx)
    if hookset is None:
        return None
    if repo is not None:
        names = [str(p["name"]) for p in repo.get("packages") or []]
    else:
        names = _staged_names(ctx)
    problems = check_lists(hookset.root, names)
    if problems:
        raise InputError(f"{ctx.recipe.path}: hooks.{SET_NAME}: packages.d names packages "
                         "the bundle does not carry:\n  " + "\n  ".join(problems),
                         hint="add them to [packages] include")
    base = BUNDLE_DIR
    section: dict[str, Any] = {"hooks": [], "lists": {}, "plugins": {}}
    with ctx.progress.step("copying vdsm hooks"):
        for hook in hookset.hooks:
            _copy(ctx, hook.path, f"{base}/hooks.d/{hook.rel}")
            section["hooks"].append(hook.rel)
        for pl in hookset.lists:
            _copy(ctx, hookset.root / "packages.d" / pl.file, f"{base}/packages.d/{pl.file}")
            section["lists"][pl.file] = {"distro": pl.distro, "packages": list(pl.packages)}
        for plugin in hookset.plugins:
            section["plugins"][plugin.name] = _plugin(ctx, plugin.name, plugin.path,
                                                      plugin.files)
    return {SET_NAME: section}


def _plugin(ctx: BuildContext, name: str, path: Path, files: tuple[str, ...]) -> dict[str, Any]:
    rel = f"{BUNDLE_DIR}/plugins/{name}"
    copied = [_copy(ctx, path / f, f"{rel}/{f}") for f in files if not f.endswith(".spec")]
    specs = [path / f for f in files if f.endswith(".spec")]
    built = []
    if specs:
        from bundler.rpmbuild import build_specs

        with ctx.progress.step(f"building {len(specs)} spec file(s) of hook plugin {name}"):
            rpms = build_specs(specs, ctx.workdir / "hook-rpms" / name, ctx.source_date_epoch)
        for r in rpms:
            if r.name in files:
                raise InputError(f"hook plugin {name}: {r.name} is both built from a spec "
                                 "and shipped in the folder")
            built.append(_copy(ctx, r, f"{rel}/{r.name}"))
    return {"files": sorted(f[len(rel) + 1:] for f in copied + built),
            "built": sorted(Path(b).name for b in built)}
