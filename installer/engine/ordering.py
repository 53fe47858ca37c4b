"""The run order: per stage, a topological sort of before/after constraints,
ties broken by priority, then by name (so the order is stable)."""

from __future__ import annotations

import heapq
from typing import Dict, Iterable, List, Set, Tuple

from installer.engine.plugin import Event
from installer.engine.stages import ORDER, Stages
from installer.errors import InputError


class PluginError(InputError):
    """A broken plugin or plugin set (bad names, cycles, missing Plugin). Exit 2."""


def build_sequence(events: Iterable[Event]) -> Dict[Stages, List[Event]]:
    """Order the events of every stage. Every problem is reported at once, before
    any stage runs: duplicate names, unknown before/after names, names of another
    stage, cycles."""
    events = list(events)
    problems: List[str] = []
    by_name: Dict[str, Event] = {}
    for ev in events:
        if ev.name in by_name:
            problems.append(f"event {ev.name!r} is registered twice")
        by_name[ev.name] = ev
    edges: Dict[str, Set[str]] = {name: set() for name in by_name}  # a -> runs before b
    for ev in events:
        for other, first, then in ([(o, ev.name, o) for o in ev.before]
                                   + [(o, o, ev.name) for o in ev.after]):
            target = by_name.get(other)
            if target is None:
                problems.append(f"event {ev.name!r} names unknown event {other!r}")
            elif target.stage != ev.stage:
                problems.append(f"event {ev.name!r} ({ev.stage.value}) names {other!r}, "
                                f"which is in stage {target.stage.value}")
            else:
                edges[first].add(then)
    sequence: Dict[Stages, List[Event]] = {}
    if not problems:
        for stage in ORDER:
            members = [ev for ev in by_name.values() if ev.stage == stage]
            ordered, cycle = _toposort(members, edges)
            if cycle:
                problems.append(f"stage {stage.value}: cycle among events "
                                f"{', '.join(sorted(cycle))}")
            sequence[stage] = ordered
    if problems:
        raise PluginError("; ".join(problems) if len(problems) == 1 else
                          f"{len(problems)} plugin problems: " + "; ".join(problems))
    return sequence


def _toposort(members: List[Event], edges: Dict[str, Set[str]]
              ) -> Tuple[List[Event], Set[str]]:
    names = {ev.name: ev for ev in members}
    indegree = {name: 0 for name in names}
    for name in names:
        for then in edges[name]:
            indegree[then] += 1
    ready: List[Tuple[int, str]] = [(names[n].priority, n) for n, d in indegree.items()
                                    if d == 0]
    heapq.heapify(ready)
    out: List[Event] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(names[name])
        for then in sorted(edges[name]):
            indegree[then] -= 1
            if indegree[then] == 0:
                heapq.heappush(ready, (names[then].priority, then))
    cycle = {n for n, d in indegree.items() if d > 0}
    return out, cycle


def describe(sequence: Dict[Stages, List[Event]]) -> List[str]:
    """The sequence as lines (for --debug)."""
    lines = []
    for stage in ORDER:
        for ev in sequence.get(stage, []):
            lines.append(f"{stage.value:18} {ev.priority:5} {ev.name}"
                         f" ({type(ev.plugin).__module__})")
    return lines
