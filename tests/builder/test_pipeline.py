"""The pipeline's order with a database: the dump starts first (after its own check)
and runs beside the planning, the other checks and the other components; whatever
fails stops it, and nothing is left at the output path. The database component is
a stand-in here (no server): it records what the pipeline asked of it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import pytest

import bundler.build as pipeline
from bundler import recipe as recipes
from bundler.components import BuildContext
from bundler.output import OutputFormat
from bundler.progress import Progress
from installer.errors import InputError

RECIPE = """
[bundle]
name = "t"
version = "1"
distro = "rhel"
distro_version = "9"
source_date_epoch = 1700000000

[[files]]
name = "conf"
root = "tree"
paths = ["etc/app"]

[database]
names = ["app"]
"""

WAIT = 30  # seconds: only reached when the pipeline is wrong


class Pending:
    """A stand-in for database.PendingDump."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.aborted = threading.Event()

    def finish(self) -> dict[str, Any]:
        if not self.db.dump_waits_for_abort:
            return {"databases": [{"name": "app", "fake": True}]}
        self.aborted.wait(WAIT)
        raise InputError("database dump aborted")

    def abort(self) -> None:
        self.db.events.append("abort")
        self.aborted.set()


class FakeDatabase:
    """A stand-in for bundler.components.database: check(), start(), build()."""

    def __init__(self, check_error: Optional[Exception] = None,
                 dump_waits_for_abort: bool = False) -> None:
        self.check_error = check_error
        self.dump_waits_for_abort = dump_waits_for_abort
        self.events: list[str] = []
        self.started = threading.Event()
        self.pending: Optional[Pending] = None

    def check(self, ctx: BuildContext) -> None:
        self.events.append("check")
        if self.check_error is not None:
            raise self.check_error

    def start(self, ctx: BuildContext) -> Pending:
        self.events.append("start")
        self.pending = Pending(self)
        self.started.set()
        return self.pending

    def build(self, ctx: BuildContext) -> Any:  # the pipeline uses start() instead
        raise AssertionError("build() called on a component that has start()")


@pytest.fixture
def recipe(tmp_path: Path) -> recipes.Recipe:
    src = tmp_path / "src"
    (src / "tree/etc/app").mkdir(parents=True)
    (src / "tree/etc/app/app.conf").write_text("answer = 42\n")
    (src / "r.toml").write_text(RECIPE)
    return recipes.load(src / "r.toml")


def _with(monkeypatch: pytest.MonkeyPatch, fake: FakeDatabase) -> None:
    original = pipeline._components

    def components(*args: Any, **kwargs: Any) -> list[tuple[str, Any]]:
        return [(name, fake if name == "database" else module)
                for name, module in original(*args, **kwargs)]

    monkeypatch.setattr(pipeline, "_components", components)


def _build(recipe: recipes.Recipe, out: Path, **kw: Any) -> pipeline.Result:
    return pipeline.build(recipe, out, OutputFormat("dir"), progress=Progress(quiet=True),
                          **kw)


def test_the_dump_runs_beside_the_planning(recipe: recipes.Recipe, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDatabase()
    _with(monkeypatch, fake)
    seen: list[bool] = []

    def prepare(ctx: BuildContext) -> None:  # a snapshot's planning
        seen.append(fake.started.wait(WAIT))

    result = _build(recipe, tmp_path / "out", prepare=prepare)
    assert seen == [True]  # the dump had started while the planning ran
    assert fake.events == ["check", "start"]
    assert result.manifest["components"]["database"] == \
        {"databases": [{"name": "app", "fake": True}]}
    assert (tmp_path / "out/files/conf.tar.zst").is_file()


def test_a_failed_planning_stops_the_dump_and_leaves_nothing(
        recipe: recipes.Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDatabase(dump_waits_for_abort=True)
    _with(monkeypatch, fake)

    def prepare(ctx: BuildContext) -> None:
        assert fake.started.wait(WAIT)
        raise InputError("no RPM file found for 1 installed package(s)")

    with pytest.raises(InputError, match="no RPM file found"):
        _build(recipe, tmp_path / "out", prepare=prepare)
    assert fake.events == ["check", "start", "abort"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no staging tree


def test_a_failed_check_elsewhere_stops_the_dump(recipe: recipes.Recipe, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDatabase(dump_waits_for_abort=True)
    _with(monkeypatch, fake)
    (tmp_path / "src/tree/etc/app").rename(tmp_path / "src/tree/etc/gone")

    def prepare(ctx: BuildContext) -> None:
        assert fake.started.wait(WAIT)  # so that there is a dump to stop

    with pytest.raises(InputError, match="etc/app: does not exist"):
        _build(recipe, tmp_path / "out", prepare=prepare)
    assert fake.events[-1] == "abort"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_a_failed_database_check_writes_nothing_else(
        recipe: recipes.Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDatabase(check_error=InputError("cannot connect to the database"))
    _with(monkeypatch, fake)
    built: list[str] = []
    original = pipeline._components

    def components(*args: Any, **kwargs: Any) -> list[tuple[str, Any]]:
        out = []
        for name, module in original(*args, **kwargs):
            if name == "filesets":
                module = _Recording(module, built)
            out.append((name, module))
        return out

    monkeypatch.setattr(pipeline, "_components", components)
    with pytest.raises(InputError, match="cannot connect"):
        _build(recipe, tmp_path / "out")
    assert fake.events == ["check"]  # never started
    assert built == []  # no other component wrote anything
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


class _Recording:
    def __init__(self, module: Any, built: list[str]) -> None:
        self.check = module.check
        self._module, self._built = module, built

    def build(self, ctx: BuildContext) -> Any:
        self._built.append("filesets")
        return self._module.build(ctx)
