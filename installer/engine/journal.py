"""The journal of committed steps, so an interrupted run resumes instead of
starting over: <root>/var/lib/satchel/journal/<action>.json.

A step is an element (or a plugin step) with a stable id. The journal is written
after each committed step, emptied by an undo, and removed when a run completes.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List

from installer.engine import fsutil


class Journal:
    """`self.journal` of plugins: done(step_id), mark(step_id)."""

    def __init__(self, state_dir: pathlib.Path, action: str, enabled: bool = True) -> None:
        self.path = state_dir / "journal" / f"{action}.json"
        self.enabled = enabled
        self._steps: Dict[str, List[Dict[str, Any]]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._steps = {k: list(v) for k, v in data.get("steps", {}).items()}
            except (OSError, ValueError, AttributeError):
                self._steps = {}

    @property
    def resuming(self) -> bool:
        """True if a previous run of this action was interrupted after some steps."""
        return bool(self._steps)

    def done(self, step_id: str) -> bool:
        """True if `step_id` was committed by an earlier, interrupted run (or this one)."""
        return step_id in self._steps

    def records(self, step_id: str) -> List[Dict[str, Any]]:
        return list(self._steps.get(step_id, []))

    def mark(self, step_id: str, records: Any = ()) -> None:
        """Record `step_id` as committed (with its state records) and persist."""
        self._steps[step_id] = list(records)
        self._write()

    def unmark(self, step_id: str) -> None:
        if self._steps.pop(step_id, None) is not None:
            self._write()

    def steps(self) -> List[str]:
        return list(self._steps)

    def clear(self) -> None:
        """The run completed: nothing left to resume."""
        self._steps = {}
        if self.path.exists():
            self.path.unlink()
            fsutil.fsync_dir(self.path.parent)

    def _write(self) -> None:
        if not self.enabled:
            return
        if not self._steps:
            self.clear()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"steps": self._steps}, indent=1, sort_keys=True).encode()
        fsutil.atomic_write(self.path, data, mode=0o600)
