"""pytest fixture: a started OneSim, always stopped, with 127.0.0.1 exempt from proxies."""

import os
from typing import Iterator

import pytest

from .sim import OneSim


def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("no_proxy", "NO_PROXY"):
        hosts = [h for h in os.environ.get(var, "").split(",") if h]
        monkeypatch.setenv(var, ",".join([*hosts, "127.0.0.1", "localhost"]))


@pytest.fixture
def onesim(monkeypatch: pytest.MonkeyPatch) -> Iterator[OneSim]:
    _no_proxy(monkeypatch)
    sim = OneSim(lock_polls=2)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
