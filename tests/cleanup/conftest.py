"""Fixtures for the cleanup tests: setup's fixtures (tests/setup/conftest.py:
the engine root, the setup runner, the admin connection to the test cluster),
a cleanup runner, and helpers to compare trees and databases."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bundler.pgcluster import Cluster
from installer import engine
from tests.setup.conftest import (  # noqa: F401  (fixtures, re-exported)
    db_names,
    db_settings,
    drop_databases,
    engine_root,
    engine_root_template,
    engine_rpms,
    run_setup,
    setup_config,
    skip_engine_state,
)
from tests.setup.conftest import drop_role as drop_role
from tests.treesnap import Snapshot, tree

RunCleanup = Callable[..., tuple[int, engine.Runner, str]]


def snapshot(root: Path) -> Snapshot:
    return tree(root, skip_engine_state)


@pytest.fixture
def run_cleanup() -> RunCleanup:
    """run_cleanup(root, settings, **runner_kw) -> (exit code, runner, output);
    unattended unless told otherwise."""
    def run(root: Path, settings: Mapping[str, Any] | None = None,
            **kw: Any) -> tuple[int, engine.Runner, str]:
        out = io.StringIO()
        kw.setdefault("unattended", True)
        kw.setdefault("stdin", io.StringIO(""))
        runner = engine.Runner("cleanup", root=root, settings=dict(settings or {}),
                               stdout=out, stderr=out, **kw)
        code = runner.run()
        return code, runner, out.getvalue()
    return run


def digest(pg: Cluster, db: str) -> dict[str, Any]:
    """Every table of the database's public schema: row count and a checksum."""
    tables = [r[0] for r in pg.run_sql(db, "SELECT tablename FROM pg_tables WHERE "
                                           "schemaname = 'public' ORDER BY 1")]
    out = {}
    for t in tables:
        out[t] = pg.run_sql(db, f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' "
                                f"ORDER BY t::text), '')) FROM \"{t}\" t")[0]
    return out


def db_exists(pg: Cluster, name: str) -> bool:
    return bool(pg.run_sql("postgres", "SELECT 1 FROM pg_database WHERE datname = "
                                       f"'{name}'"))


def role_exists(pg: Cluster, role: str) -> bool:
    return bool(pg.run_sql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"))


def logs(root: Path) -> str:
    return "".join(p.read_text(errors="replace")
                   for p in sorted((root / "var/log/satchel").glob("*.log")))
