"""The journal of committed steps, so an interrupted run resumes instead of
starting over: <root>/var/lib/satchel/journal/<action>.json.

A step is an element (or a plugin step) with a stable id. The journal is written
after each committed step, emptied by an undo, and removed when a run completes.

A step that changes many things in its commit (a file set moved into place, a dnf
transaction) also writes what it is about to do before it starts, with
`begin(step_id, data)`: a run killed in the middle of that commit leaves the entry
behind, and the next run's element reads it back with `started(step_id)` to learn
what the interrupted attempt changed (so the state registry records it, and undo
knows the state before the first attempt). `mark()` drops it: the step is done.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import threading
from typing import Any, Dict, List, Optional

from installer.engine import fsutil


class Journal:
    """`self.journal` of plugins: done(step_id), mark(step_id), begin/started/abandon."""

    def __init__(self, state_dir: pathlib.Path, action: str, enabled: bool = True) -> None:
        self.path = state_dir / "journal" / f"{action}.json"
        self.enabled = enabled
        self._steps: Dict[str, List[Dict[str, Any]]] = {}
        self._started: Dict[str, Any] = {}
        # An element prepared ahead (transaction.prepare_ahead) writes from the
        # background worker while the main thread commits: one writer at a time.
        self._lock = threading.RLock()
        if enabled:
            self._remove_stale_temps()
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._steps = {k: list(v) for k, v in data.get("steps", {}).items()}
                self._started = dict(data.get("started", {}))
            except (OSError, ValueError, AttributeError):
                self._steps, self._started = {}, {}

    @property
    def resuming(self) -> bool:
        """True if a previous run of this action was interrupted after some steps."""
        return bool(self._steps or self._started)

    def done(self, step_id: str) -> bool:
        """True if `step_id` was committed by an earlier, interrupted run (or this one)."""
        return step_id in self._steps

    def records(self, step_id: str) -> List[Dict[str, Any]]:
        return list(self._steps.get(step_id, []))

    def mark(self, step_id: str, records: Any = ()) -> None:
        """Record `step_id` as committed (with its state records) and persist."""
        with self._lock:
            self._steps[step_id] = list(records)
            self._started.pop(step_id, None)
            self._write()

    def unmark(self, step_id: str) -> None:
        with self._lock:
            if self._steps.pop(step_id, None) is not None:
                self._write()

    def begin(self, step_id: str, data: Any) -> None:
        """Persist, before a step's commit starts changing things, what it will change
        (JSON data of the element's choosing); replaces an earlier entry."""
        with self._lock:
            self._started[step_id] = data
            self._write()

    def started(self, step_id: str) -> Optional[Any]:
        """What an interrupted attempt of `step_id` said it would change, or None."""
        return self._started.get(step_id)

    def abandon(self, step_id: str, earlier: Optional[Any] = None) -> None:
        """The attempt was reverted: forget it (or go back to what an earlier,
        interrupted attempt had left, `earlier`, whose changes are still there)."""
        with self._lock:
            if earlier is None:
                if self._started.pop(step_id, None) is None:
                    return
            else:
                self._started[step_id] = earlier
            self._write()

    def steps(self) -> List[str]:
        return list(self._steps)

    def clear(self) -> None:
        """The run completed: nothing left to resume."""
        with self._lock:
            self._steps, self._started = {}, {}
            if self.path.exists():
                self.path.unlink()
                fsutil.fsync_dir(self.path.parent)

    def _remove_stale_temps(self) -> None:
        """A run killed in the middle of a journal write leaves its temp file (the
        journal itself is replaced atomically, so it is intact). The run lock is held:
        no other run is writing here."""
        for tmp in self.path.parent.glob(".satchel-*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _write(self) -> None:
        if not self.enabled:
            return
        if not self._steps and not self._started:
            self.clear()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"steps": self._steps, "started": self._started}, indent=1,
                          sort_keys=True).encode()
        fsutil.atomic_write(self.path, data, mode=0o600)
