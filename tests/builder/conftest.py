"""Fixtures for the builder tests: the demo RPMs (built once per session, shared
with the import tests through tests/rpmfixtures.py) and build contexts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bundler.components import BuildContext
from tests.rpmfixtures import SDE, demo_rpms, recipe_ctx

__all__ = ["demo_rpms"]

MakeCtx = Callable[..., BuildContext]


@pytest.fixture
def make_ctx(tmp_path: Path) -> MakeCtx:
    """A BuildContext for a recipe with the given [packages] and a fresh staging tree."""
    count = [0]

    def make(sources: Sequence[Path] = (), include: Sequence[str] = ("demo-app",),
             base: Sequence[str] = ("demo-base",), sde: int = SDE) -> BuildContext:
        count[0] += 1
        return recipe_ctx(tmp_path / f"build{count[0]}", sources, include, base, sde)

    return make
