"""Progress behind one interface (after osbuild's monitor and mkosi's complete_step).

On a terminal a step shows its title, a live counter and its duration; in a pipe
it stays quiet (the steps and their durations still go to the log at info
level). The JSON monitor writes one JSON object per line (for --json consumers
reading stderr).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Optional, TextIO

log = logging.getLogger("satchel")


class Progress:
    """A nested-step monitor. Use `step()` as a context manager, `advance()` inside."""

    def __init__(self, stream: Optional[TextIO] = None, json_lines: bool = False,
                 quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.json_lines = json_lines
        self.quiet = quiet
        self.live = (not json_lines and not quiet
                     and hasattr(self.stream, "isatty") and self.stream.isatty())
        self._stack: list[tuple[str, float]] = []
        self._done = 0
        self._total: Optional[int] = None
        self._last_draw = 0.0

    @contextlib.contextmanager
    def step(self, title: str, total: Optional[int] = None) -> Iterator[Progress]:
        depth = len(self._stack)
        self._stack.append((title, time.monotonic()))
        self._done, self._total = 0, total
        self._emit({"event": "start", "step": title, "total": total},
                   f"{'  ' * depth}‣ {title}")
        try:
            yield self
        finally:
            _, started = self._stack.pop()
            took = time.monotonic() - started
            if self.live:
                self.stream.write("\r\033[K")
            self._emit({"event": "end", "step": title, "seconds": round(took, 3)},
                       f"{'  ' * depth}  {title} done in {took:.1f}s")
            log.info("%s: %.2fs", title, took)

    def advance(self, n: int = 1, item: str = "") -> None:
        self._done += n
        if self.json_lines:
            return
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        total = f"/{self._total}" if self._total else ""
        self.stream.write(f"\r\033[K    {self._done}{total} {item[:60]}")
        self.stream.flush()

    def _emit(self, record: dict, text: str) -> None:
        if self.quiet or not (self.live or self.json_lines):
            return
        if self.json_lines:
            self.stream.write(json.dumps(record) + "\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
