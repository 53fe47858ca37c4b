"""pytest plugin: one throwaway PostgreSQL cluster per test session.

`pg_cluster` (session) starts a `bundler.pgcluster.Cluster` on 127.0.0.1 under a
temporary directory in /tmp (the postgres user must reach it; pytest's own tmp dirs
are 0700 root) and always stops it: at teardown, on a failed test, on Ctrl-C, on
SIGTERM (turned into SystemExit while the session runs) and from atexit.
`pg_db` (function) is a fresh empty database on it, dropped at teardown.

Enable with `pytest_plugins = ["tests.pgcluster"]` in a conftest.py.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import pytest

from bundler.pgcluster import Cluster


def _sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise SystemExit(128 + signum)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="satchel-pg-", dir="/tmp"))
    cluster = Cluster(base)
    previous: Any = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_db(pg_cluster: Cluster) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_cluster.create_database(name)
    try:
        yield name
    finally:
        pg_cluster.drop_database(name)
