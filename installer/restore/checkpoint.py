"""A test hook to interrupt an import at an exact place: SATCHEL_STOP_AT=POINT[@N].

The N-th time (default: the first) the run passes POINT, it stops itself with
SIGSTOP. A test waits for the stopped process and kills it with SIGKILL there,
which is how the resume tests interrupt a step at a known point without timing
guesses (or a person sends SIGCONT to let it go on). Without the variable a
checkpoint costs one dictionary lookup.

Points:
  files.stage     after each file of a file set is written to the staging area
  files.commit    after each entry of a file set is moved into place
  packages.dnf    just before `dnf install` starts
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Dict

STOP_AT_VAR = "SATCHEL_STOP_AT"

log = logging.getLogger("satchel.checkpoint")
_passed: Dict[str, int] = {}


def reached(point: str) -> None:
    """Stop here if SATCHEL_STOP_AT names this point (and this is its N-th pass)."""
    spec = os.environ.get(STOP_AT_VAR)
    if not spec:
        return
    name, _, nth = spec.strip().partition("@")
    if name != point:
        return
    _passed[point] = _passed.get(point, 0) + 1
    want = int(nth) if nth.isdigit() else 1
    if _passed[point] == want:
        log.warning("%s=%s: stopping here (SIGSTOP)", STOP_AT_VAR, spec)
        for handler in logging.getLogger().handlers + logging.getLogger("satchel").handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
