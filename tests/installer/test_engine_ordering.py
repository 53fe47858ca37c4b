"""Run order: topological sort per stage, priority and name as tie-breakers,
and every ordering mistake reported before any stage runs."""

from __future__ import annotations

from typing import Any, List

import pytest

from installer import engine
from installer.engine import Stages
from installer.engine.ordering import PluginError, build_sequence
from installer.engine.plugin import Event


class _P:
    pass


def ev(name: str, stage: Stages = Stages.MISC, before: Any = (), after: Any = (),
       priority: int = engine.PRIO_DEFAULT) -> Event:
    return Event(stage, name, tuple(before), tuple(after), priority, None, _P(),  # type: ignore[arg-type]
                 lambda: None)


def names(events: List[Event]) -> List[str]:
    return [e.name for e in events]


def test_before_after_win_over_priority_and_name() -> None:
    seq = build_sequence([
        ev("a", after=("c",), priority=engine.PRIO_FIRST),
        ev("b"),
        ev("c", after=("d",), priority=engine.PRIO_LAST),
        ev("d", priority=engine.PRIO_LOW),
    ])
    assert names(seq[Stages.MISC]) == ["b", "d", "c", "a"]


def test_ties_broken_by_priority_then_name() -> None:
    seq = build_sequence([ev("z"), ev("m", priority=engine.PRIO_HIGH), ev("a"),
                          ev("y", before=("a",))])
    assert names(seq[Stages.MISC]) == ["m", "y", "a", "z"]


def test_stages_are_ordered_independently() -> None:
    seq = build_sequence([ev("x", Stages.CLOSEUP), ev("y", Stages.BOOT)])
    assert names(seq[Stages.BOOT]) == ["y"]
    assert names(seq[Stages.CLOSEUP]) == ["x"]
    assert seq[Stages.MISC] == []


def test_cycle_is_an_error_naming_its_members() -> None:
    with pytest.raises(PluginError, match=r"cycle among events a, b, c"):
        build_sequence([ev("a", after=("c",)), ev("b", after=("a",)),
                        ev("c", after=("b",)), ev("free")])


def test_unknown_name_is_an_error() -> None:
    with pytest.raises(PluginError, match=r"'a' names unknown event 'nope'"):
        build_sequence([ev("a", before=("nope",))])


def test_before_across_stages_is_an_error() -> None:
    with pytest.raises(PluginError, match=r"'a' \(misc\) names 'b', which is in stage closeup"):
        build_sequence([ev("a", before=("b",)), ev("b", Stages.CLOSEUP)])


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(PluginError) as info:
        build_sequence([ev("a", before=("x",)), ev("b", after=("y",)), ev("b")])
    msg = str(info.value)
    assert "3 plugin problems" in msg and "'x'" in msg and "'y'" in msg and "twice" in msg


def test_stage_order_is_otopis() -> None:
    assert [s.value for s in Stages] == [
        "boot", "init", "setup", "internal_packages", "programs", "late_setup",
        "customization", "validation", "transaction_begin", "early_misc", "packages",
        "misc", "transaction_end", "closeup", "cleanup", "pre_terminate", "terminate",
        "reboot"]
