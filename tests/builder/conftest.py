"""Fixtures for the builder tests: the demo RPMs, built once per session."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bundler.components import BuildContext
from bundler.progress import Progress
from bundler.recipe import parse
from bundler.rpmbuild import build_specs
from bundler.staging import Staging

ROOT = Path(__file__).resolve().parents[2]
DEMO_SPECS = sorted((ROOT / "payload" / "demo").glob("*.spec"))
SDE = 1767225600  # 2026-01-01, as recipes/demo.toml


@pytest.fixture(scope="session")
def demo_rpms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the demo RPMs (demo-base, -app, -lib, -common, -extra)."""
    out = tmp_path_factory.mktemp("demo-rpms")
    build_specs(DEMO_SPECS, out, SDE)
    return out


MakeCtx = Callable[..., BuildContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeCtx:
    """A BuildContext for a recipe with the given [packages] and a fresh staging tree."""
    count = [0]

    def make(sources: Sequence[Path] = (), include: Sequence[str] = ("demo-app",),
             base: Sequence[str] = ("demo-base",), sde: int = SDE) -> BuildContext:
        count[0] += 1
        where = tmp_path / f"build{count[0]}"
        where.mkdir()
        text = "\n".join([
            "[bundle]", 'name = "t"', 'version = "1"', 'distro = "rhel"',
            'distro_version = "9"', "[packages]",
            f"include = {json.dumps(list(include))}",
            f"sources = {json.dumps([str(s) for s in sources])}",
            f"base = {json.dumps(list(base))}", "",
        ])
        recipe = parse(where / "recipe.toml", text)
        work = where / "work"
        work.mkdir()
        return BuildContext(recipe=recipe, staging=Staging(where / "stage"),
                            progress=Progress(quiet=True), source_date_epoch=sde,
                            workdir=work, source_root=Path("/"))

    return make
