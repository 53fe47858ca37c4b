"""What a plugin sees of its run (PluginBase exposes these as attributes)."""

from __future__ import annotations

import logging
import pathlib
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

from installer.engine import process
from installer.engine.dialog import Dialog
from installer.engine.environment import Environment
from installer.engine.journal import Journal
from installer.engine.paths import resolve_under
from installer.engine.state import StateRegistry
from installer.engine.transaction import Transaction

log = logging.getLogger("satchel.plan")


@dataclass
class Context:
    action: str
    root: pathlib.Path
    env: Environment
    dialog: Dialog
    state: StateRegistry
    journal: Journal
    transaction: Transaction
    dry_run: bool = False
    bundle: Optional[pathlib.Path] = None
    plan_lines: List[str] = field(default_factory=list)

    def resolve(self, path: Any, follow_last: bool = True) -> pathlib.Path:
        return resolve_under(self.root, path, follow_last=follow_last)

    def run(self, argv: Sequence[Any], **kwargs: Any) -> Any:
        return process.run(argv, **kwargs)

    def plan(self, text: str) -> None:
        log.debug("plan: %s", text)
        self.plan_lines.append(text)
