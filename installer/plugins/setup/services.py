"""The appliance's services: stopped before setup changes their configuration and
enabled (and started) after, as engine-setup does with ovirt-engine, its ETL and
its notifier.

    [setup.services]
    main = "engine.service"                  # required: the service itself
    auxiliary = [                            # optional: each only when its package is
      { unit = "engine-etl.service", package = "engine-etl" },   # installed in the
    ]                                        # root (no package: always)

- early misc (`setup.services.stop`): when the root is the running system, each
  unit that is active is stopped (auxiliary ones first); a rollback starts it again.
  Otherwise nothing is stopped (logged).
- closeup (`setup.services.start`): each unit is enabled (`systemctl --root ROOT
  enable`: works on the unit files of a root offline; a unit already enabled is left
  alone, so a re-run changes nothing) and, on the running system, started (main
  first) unless SETUP_SERVICES/start is false. A rollback stops what was started
  and disables what was enabled. Each unit is recorded in the state registry (kind
  service: enabled, started, main).

A unit missing from the root, or masked, is refused at validation. A unit without
an [Install] section ("static") cannot be enabled: that is noted, and it is only
started.

Answer keys:

  SETUP_SERVICES/start=bool:true   start the services at the end of setup (on the
                                   running system; a root is only enabled)
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from typing import Any, Dict, List, Mapping, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.transaction import TransactionElement
from installer.errors import RefusedError
from installer.plugins.importer.services import _dirs, _systemctl, is_enabled
from installer.plugins.setup import _config
from installer.restore.packages import installed

KEYS = (
    engine.Key("SETUP_SERVICES/start", bool, default=True,
               doc="start the services at the end of setup (on the running system)"),
)
UNIT = re.compile(r"^[A-Za-z0-9@_.:\\-]+\.(service|socket|target|timer|path)$")


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, {"main": (str, True), "auxiliary": (list, False)})
    if isinstance(table.get("main"), str) and not UNIT.match(table["main"]):
        problems.append(f"main: {table['main']!r} is not a unit name (like engine.service)")
    aux = table.get("auxiliary", [])
    for i, entry in enumerate(aux if isinstance(aux, list) else []):
        if not isinstance(entry, Mapping):
            problems.append(f"auxiliary[{i}]: expected a table {{ unit = ..., package = ... }}")
            continue
        problems += [f"auxiliary[{i}].{p}" for p in _config.check_table(
            entry, {"unit": (str, True), "package": (str, False)})]
        if isinstance(entry.get("unit"), str) and not UNIT.match(entry["unit"]):
            problems.append(f"auxiliary[{i}].unit: {entry['unit']!r} is not a unit name")
    return problems


class UnitElement(TransactionElement):
    """Enable and/or start a unit; undo stops what it started and disables what it
    enabled (and removes the .wants directories systemctl made)."""

    def __init__(self, unit: str, main: bool, enable: bool, start: bool,
                 ours: bool = False) -> None:
        self.unit, self.main, self.enable, self.start = unit, main, enable, start
        self.enabled = self.started = False
        self.ours = ours  # an earlier setup enabled it (cleanup may disable it)

    def describe(self) -> str:
        what = [w for w, on in (("enable", self.enable), ("start", self.start)) if on]
        return f"{' and '.join(what)} {self.unit}"

    def prepare(self) -> None:
        self.dirs_before = _dirs(self.txn.root / "etc/systemd")

    def commit(self) -> None:
        if self.enable:
            _systemctl(self.txn.root, "enable", self.unit)
            self.enabled = True
        if self.start:
            _systemctl(self.txn.root, "start", self.unit)
            self.started = True

    def undo(self) -> None:
        if self.started:
            _systemctl(self.txn.root, "stop", self.unit)
            self.started = False
        if self.enabled:
            _systemctl(self.txn.root, "disable", self.unit)
            self.enabled = False
        for d in sorted(_dirs(self.txn.root / "etc/systemd") - self.dirs_before, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)

    abort = undo

    def records(self) -> List[Dict[str, Any]]:
        # "enabled": setup enabled it (now or earlier); a unit the admin had enabled
        # before setup is not ours to disable in cleanup.
        return [{"kind": "service", "name": self.unit, "enabled": self.enabled or self.ours,
                 "started": self.started, "main": self.main}]


class Plugin(engine.PluginBase):
    KEYS = KEYS
    _chosen: List[Tuple[str, bool]] = []

    def _on(self) -> bool:
        return not self.dry_run and _config.configured(self, "services")

    def _units(self) -> List[Tuple[str, bool]]:
        """(unit, is main) of the main unit, then of each auxiliary one whose package
        is installed in the root (found once per run)."""
        if self._chosen:
            return self._chosen
        section = _config.load(self).section("services")
        aux = section.get("auxiliary", [])
        have = {p.name for p in installed(self.root)} if aux else set()
        units = [(str(section["main"]), True)]
        for entry in aux:
            package = entry.get("package")
            if package and package not in have:
                self.log.info("%s: package %s is not installed: left alone",
                              entry["unit"], package)
                continue
            units.append((str(entry["unit"]), False))
        self._chosen = units
        return units

    def _start(self) -> bool:
        return _config.systemd_running(self) and bool(self.env["SETUP_SERVICES/start"])

    @engine.event(stage=Stages.VALIDATION, name="setup.services.check",
                  condition=lambda self: _config.configured(self, "services"))
    def _check(self) -> None:
        live = _config.systemd_running(self)
        for unit, _main in self._units():
            state = is_enabled(self.root, unit)
            if state in ("not-found", "masked", "masked-runtime"):
                why = "no such unit in the root" if state == "not-found" else state
                raise RefusedError(f"service {unit}: {why}",
                                   hint="is the package that ships it installed? "
                                        "Nothing was changed")
            if state == "static":
                self.dialog.note(f"service {unit} is static (its unit has no [Install] "
                                 "section): it cannot be enabled")
            elif state not in ("enabled", "disabled"):
                self.dialog.note(f"service {unit} is {state}: left as it is")
            if live:
                self.plan(f"service {unit}: stop while configuring, "
                          + ("start after" if self._start() else "leave stopped"))
            if state == "disabled":
                self.plan(f"service {unit}: enable")
        if not live:
            self.log.info("services: the root is not the running system: enabled only, "
                          "not stopped or started")

    @engine.event(stage=Stages.EARLY_MISC, name="setup.services.stop",
                  condition=lambda self: self._on())
    def _stop(self) -> None:
        if not _config.systemd_running(self):
            self.log.info("services: not the running system: nothing to stop")
            return
        for unit, _main in reversed(self._units()):
            if self.run(["systemctl", "is-active", "--quiet", unit],
                        check=False).returncode != 0:
                continue
            self.transaction.append(engine.CallbackElement(
                f"stop {unit}", do=functools.partial(self.run, ["systemctl", "stop", unit]),
                undo=functools.partial(self.run, ["systemctl", "start", unit])))

    @engine.event(stage=Stages.CLOSEUP, name="setup.services.start",
                  condition=lambda self: self._on())
    def _start_units(self) -> None:
        start = self._start()
        for unit, main in self._units():
            enable = is_enabled(self.root, unit) == "disabled"
            if enable or start:
                ours = bool(self.state.services("setup").get(unit, {}).get("enabled"))
                self.transaction.append(UnitElement(unit, main, enable, start, ours))
            else:
                self.log.info("service %s: already enabled", unit)
