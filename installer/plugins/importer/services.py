"""Services: enabled with `systemctl --root` into a root, and also started when
the root is the running system's `/`. Undo puts each unit back as it was."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from installer import engine
from installer.engine import Stages
from installer.engine.process import run
from installer.engine.transaction import TransactionElement
from installer.restore import bundleinfo


def _dirs(top: Path) -> Set[Path]:
    """Directories at and below `top` (small trees: /etc/systemd)."""
    out = set()
    p = top
    while not p.exists() and p != p.parent:
        p = p.parent
    for dirpath, _, _ in os.walk(p):
        out.add(Path(dirpath))
    return out


def live_system(root: Path) -> bool:
    return str(root.resolve()) == "/" and os.path.isdir("/run/systemd/system")


def _systemctl(root: Path, *args: str, check: bool = True) -> Any:
    scope = [] if str(root.resolve()) == "/" else [f"--root={root}"]
    return run(["systemctl", *scope, *args], check=check, capture=True)


def is_enabled(root: Path, unit: str) -> str:
    out = _systemctl(root, "is-enabled", unit, check=False)
    text = (out.stdout or "").strip()
    return text.splitlines()[-1] if text else "not-found"


class EnableService(TransactionElement):
    def __init__(self, unit: str, start: bool) -> None:
        self.unit, self.start = unit, start
        self.step_id = f"service:{unit}"
        self.was: Optional[str] = None
        self.started = False

    def describe(self) -> str:
        return f"enable {self.unit}" + (" and start it" if self.start else "")

    def prepare(self) -> None:
        self.dirs_before = _dirs(self.txn.root / "etc/systemd")
        self.was = is_enabled(self.txn.root, self.unit)
        if self.was == "not-found":
            from installer.errors import RefusedError
            raise RefusedError(f"service {self.unit}: no such unit on the target",
                               hint="is the package that ships it in the bundle?")

    def commit(self) -> None:
        if self.was != "enabled":
            _systemctl(self.txn.root, "enable", self.unit)
        if self.start:
            _systemctl(self.txn.root, "start", self.unit)
            self.started = True

    def undo(self) -> None:
        if self.started:
            _systemctl(self.txn.root, "stop", self.unit, check=False)
        if self.was not in ("enabled", None):
            _systemctl(self.txn.root, "disable", self.unit)
        # systemctl leaves the .wants directories it made: remove the empty new ones.
        for d in sorted(_dirs(self.txn.root / "etc/systemd") - self.dirs_before, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)

    abort = undo

    def records(self) -> List[Dict[str, Any]]:
        return [{"kind": "service", "name": self.unit, "enabled": True,
                 "was": self.was, "started": self.started}]


class Plugin(engine.PluginBase):
    def _units(self) -> List[str]:
        return list(bundleinfo.component(self.bundle, "services").get("enable", []))

    @engine.event(stage=Stages.VALIDATION, name="import.services.plan",
                  condition=lambda self: bool(self._units()))
    def _plan(self) -> None:
        start = live_system(self.root)
        for unit in self._units():
            self.plan(f"service {unit}: enable" + (" and start" if start else
                                                   " (started at next boot)"))

    @engine.event(stage=Stages.MISC, name="import.services",
                  after=("import.files",),
                  condition=lambda self: bool(self._units()))
    def _enable(self) -> None:
        start = live_system(self.root)
        for unit in self._units():
            if not start and is_enabled(self.root, unit) == "enabled":
                continue  # nothing to change: a re-run stays a no-op
            self.transaction.append(EnableService(unit, start))
