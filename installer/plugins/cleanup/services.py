"""The services setup started and enabled: its main and auxiliary services
([setup.services] of recipe.json; without it, every service setup recorded but
PostgreSQL's and NFS's) are stopped and disabled, first thing (early_misc).

- stop: `systemctl stop`, only when the root is this machine's / and systemd
  runs (an image under --root runs nothing); undo starts it again.
- disable: what setup enabled (its record says "enabled", and not that it was
  enabled before setup: "was") and is still enabled — also in a --root image
  (`systemctl --root`): a service left enabled would start at boot without its
  configuration and database. engine-cleanup only stopped them; setup enables
  them again. Undo enables it again.

Packages are never removed. Services cleanup did something to are forgotten by
the registry at commit; PostgreSQL, rpcbind and the NFS server are left alone.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.process import run
from installer.engine.transaction import TransactionElement
from installer.plugins.cleanup import _facts
from installer.plugins.setup import _config

# Never stopped by cleanup when [setup.services] is not there to name the units.
INFRASTRUCTURE = ("postgresql", "rpcbind", "nfs-server", "nfs", "nfs-mountd", "nfs-idmapd")


def can_stop(plugin: Any) -> bool:
    """Whether services can be stopped: the root is / and systemd runs."""
    return _config.systemd_running(plugin)


def systemctl(root: Any, live: bool, *args: str, check: bool = True) -> Any:
    scope = [] if live else [f"--root={root}"]
    return run(["systemctl", *scope, *args], check=check)


def _word(proc: Any) -> str:
    text = (proc.stdout or "").strip()
    return text.splitlines()[-1] if text else ""


def setup_enabled(rec: Any) -> bool:
    """Setup's record says setup enabled the unit (it was not enabled before)."""
    if not isinstance(rec, dict):
        return False
    enabled = rec.get("enabled")
    if enabled is None:
        enabled = rec.get("enable")
    return bool(enabled) and rec.get("was") not in ("enabled", "enabled-runtime")


class StopService(TransactionElement):
    """Stop and/or disable one unit; undo enables and starts it again."""

    def __init__(self, unit: str, stop: bool, disable: bool, live: bool) -> None:
        self.unit, self.stop, self.disable, self.live = unit, stop, disable, live
        self.stopped = self.disabled = False

    def describe(self) -> str:
        what = " and ".join(w for w, on in (("stop", self.stop), ("disable", self.disable))
                            if on)
        return f"{what} {self.unit}"

    def prepare(self) -> None:
        self.before = _dirs(self.txn.root / "etc/systemd/system")

    def commit(self) -> None:
        if self.stop:
            systemctl(self.txn.root, self.live, "stop", self.unit)
            self.stopped = True
        if self.disable:
            systemctl(self.txn.root, self.live, "disable", self.unit)
            self.disabled = True

    def undo(self) -> None:
        if self.disabled:
            systemctl(self.txn.root, self.live, "enable", self.unit)
            # systemctl disable may have removed emptied .wants directories that
            # enable does not make again for a unit without them: put them back.
            for d in sorted(self.before - _dirs(self.txn.root / "etc/systemd/system")):
                os.makedirs(d, exist_ok=True)
            self.disabled = False
        if self.stopped:
            systemctl(self.txn.root, self.live, "start", self.unit)
            self.stopped = False

    abort = undo


def _dirs(top: Any) -> set:
    out = set()
    if os.path.isdir(top):
        for dirpath, _, _ in os.walk(top):
            out.add(dirpath)
    return out


class Plugin(engine.PluginBase):

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._todo: List[Tuple[str, bool, bool]] = []
        self._idle: List[str] = []

    def _units(self) -> List[str]:
        wanted: Optional[List[str]] = _facts.summary(self).service_units()
        out = []
        for unit in sorted(self.state.services(action=_facts.SETUP)):
            base = unit[:-len(".service")] if unit.endswith(".service") else unit
            if wanted is not None and unit not in wanted and base not in wanted:
                self.log.info("left alone: service %s (not setup's main or auxiliary)", unit)
            elif wanted is None and base.split("@")[0].startswith(INFRASTRUCTURE):
                self.log.info("left alone: service %s", unit)
            else:
                out.append(unit)
        return out

    @engine.event(stage=Stages.VALIDATION, name="cleanup.services.plan",
                  condition=lambda self: bool(self.state.services(action=_facts.SETUP)))
    def _plan(self) -> None:
        live = can_stop(self)
        records = self.state.services(action=_facts.SETUP)
        for unit in self._units():
            stop = live and _word(systemctl(self.root, live, "is-active", unit,
                                            check=False)) in ("active", "activating",
                                                              "reloading")
            disable = setup_enabled(records[unit]) and _word(systemctl(
                self.root, live, "is-enabled", unit, check=False)) == "enabled"
            if not (stop or disable):
                self._idle.append(unit)
                continue
            self._todo.append((unit, stop, disable))
            self.plan(" and ".join(w for w, on in (("stop", stop), ("disable", disable))
                                   if on) + f" service {unit}")
        if self._todo:
            _facts.summary(self).work.append(f"{len(self._todo)} service(s)")
        if not live:
            self.log.info("services: the root is not this machine's running system; "
                          "nothing is stopped")

    @engine.event(stage=Stages.EARLY_MISC, name="cleanup.services.stop",
                  condition=lambda self: not self.dry_run)
    def _stop(self) -> None:
        live = can_stop(self)
        for unit in self._idle:  # neither running nor enabled by setup: done with
            self.state.forget("services", unit, action=_facts.SETUP)
        for unit, stop, disable in self._todo:
            if self.transaction.append(StopService(unit, stop, disable, live)):
                self.state.forget("services", unit, action=_facts.SETUP)
