"""Shared RPM fixtures: the demo RPMs, a bundle repo built from them, and test roots.

Import the fixtures into a test module (`from tests.rpmfixtures import demo_rpms`)
to use them there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bundler.components import BuildContext, rpm_repo
from bundler.dnf import rpm_root
from bundler.progress import Progress
from bundler.recipe import parse
from bundler.rpmbuild import build_specs
from bundler.staging import Staging

ROOT = Path(__file__).resolve().parents[1]
DEMO_SPECS = sorted((ROOT / "payload" / "demo").glob("*.spec"))
SDE = 1767225600  # 2026-01-01, as recipes/demo.toml
BASE_RPM = "demo-base-9.0-1.noarch.rpm"
CHAIN = ["demo-app-1.0-1.noarch", "demo-common-1.0-1.noarch", "demo-lib-1.0-1.noarch"]


@pytest.fixture(scope="session")
def demo_rpms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the demo RPMs (demo-base, -app, -lib, -common, -extra)."""
    out = tmp_path_factory.mktemp("demo-rpms")
    build_specs(DEMO_SPECS, out, SDE)
    return out


def recipe_ctx(where: Path, sources: Sequence[Path] = (), include: Sequence[str] = ("demo-app",),
               base: Sequence[str] = ("demo-base",), sde: int = SDE,
               extra: Sequence[str] = ()) -> BuildContext:
    """A BuildContext for a recipe with the given [packages] (plus `extra` lines
    in that section) and a fresh staging tree under `where`."""
    where.mkdir(parents=True)
    text = "\n".join([
        "[bundle]", 'name = "t"', 'version = "1"', 'distro = "rhel"',
        'distro_version = "9"', "[packages]",
        f"include = {json.dumps(list(include))}",
        f"sources = {json.dumps([str(s) for s in sources])}",
        f"base = {json.dumps(list(base))}", *extra, "",
    ])
    recipe = parse(where / "recipe.toml", text)
    work = where / "work"
    work.mkdir()
    return BuildContext(recipe=recipe, staging=Staging(where / "stage"),
                        progress=Progress(quiet=True), source_date_epoch=sde,
                        workdir=work, source_root=Path("/"))


def make_bundle(where: Path, sources: Sequence[Path], allow_unsigned: bool = True,
                include: Sequence[str] = ("demo-app",)) -> tuple[Path, dict[str, Any]]:
    """A bundle directory holding repo/ (built by rpm_repo) and its manifest dict
    (only what the import of packages reads)."""
    ctx = recipe_ctx(where, sources, include=include,
                     extra=[f"allow_unsigned = {json.dumps(allow_unsigned)}"])
    section = rpm_repo.build(ctx)
    manifest = {"target": {"distro": "rhel", "version": "9", "arch": "x86_64"},
                "components": {"repo": section}}
    return ctx.staging.root, manifest


def make_root(root: Path, rpms: Path, with_base: bool = True) -> Path:
    """A target root: /etc/os-release, an rpmdb at /var/lib/rpm, demo-base in it."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID="rhel"\nVERSION_ID="9.4"\n')
    if with_base:
        rpm_root(root, ["-i", "--nodeps", str(rpms / BASE_RPM)])
    else:
        rpm_root(root, ["--initdb"])
    return root
