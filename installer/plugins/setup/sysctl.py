"""Kernel settings the appliance needs (engine-setup's shared memory check, as any
sysctl): the recipe's settings written into one file of /etc/sysctl.d that satchel
owns, and applied with `sysctl -p FILE` when the root is this machine's / (else
they take effect at the next boot, and a note says so).

    [setup.sysctl]
    settings = { "kernel.shmmax" = 68719476736 }   # required: name -> integer or string
    priority = 10       # optional, 0-99: the file is /etc/sysctl.d/<priority>-<app>.conf
    file = "/etc/sysctl.d/10-engine.conf"          # optional, instead of priority (*.conf)

The file is rewritten whole (mode 0644, root), the settings sorted by name, under a
comment naming satchel and the application; what else it held is not kept. A
re-run that would write the same bytes changes nothing and applies nothing. When
the recipe moves the file (another priority or file), the previous setup's file is
removed (found by its state record). On a
live root a rollback puts the file back and the previous kernel values too.

No answer keys: the settings come from the recipe.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.plugins.hooks._elements import unchanged
from installer.plugins.setup import _config
from installer.plugins.setup._records import RecordedFileWrite

# kernel.shmmax, net.ipv4.conf.eth0.rp_filter, net.ipv4.conf.all.arp_ignore, vm.swappiness
NAME = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_:@-]+)+$")
SPEC = {"settings": (dict, True), "priority": (int, False), "file": (str, False)}
MODE = 0o644
WRITTEN_BY = "setup.sysctl"  # in the file's state record: how a later run finds it


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, SPEC)
    settings = table.get("settings")
    if isinstance(settings, Mapping):
        if not settings:
            problems.append("settings: empty (name at least one sysctl)")
        for name, value in settings.items():
            if not NAME.match(str(name)):
                problems.append(f"settings: {name!r} is not a sysctl name "
                                "(dotted, like kernel.shmmax)")
            problem = _value_problem(value)
            if problem:
                problems.append(f"settings.{name}: {problem}")
    priority = table.get("priority")
    if isinstance(priority, int) and not isinstance(priority, bool) and \
            not 0 <= priority <= 99:
        problems.append(f"priority: {priority} is not in 0-99")
    if "file" in table and "priority" in table:
        problems.append("file: give file or priority, not both")
    path = table.get("file")
    if isinstance(path, str):
        problem = _config.absolute(path)
        if problem:
            problems.append(f"file: {problem}")
        elif not path.endswith(".conf"):
            problems.append(f"file: {path!r} does not end in .conf "
                            "(systemd-sysctl reads only *.conf)")
    return problems


def _value_problem(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return f"expected an integer or a string, got {type(value).__name__}"
    if isinstance(value, str) and (not value.strip() or any(
            c in value for c in "\n\r\0") or value != value.strip()):
        return f"{value!r} is not a sysctl value (one line, no leading/trailing blanks)"
    return None


def settings_file(cfg: _config.SetupConfig) -> str:
    """The sysctl.d file of this appliance."""
    section = cfg.section("sysctl")
    if "file" in section:
        return str(section["file"])
    return f"/etc/sysctl.d/{int(section.get('priority', 10)):02d}-{cfg.app}.conf"


def render(cfg: _config.SetupConfig) -> bytes:
    settings = cfg.section("sysctl")["settings"]
    lines = [f"# Written by satchel `install setup` for {cfg.app}: the kernel settings it needs.",
             "# satchel owns this file: change the recipe's [setup.sysctl] and re-run setup."]
    lines += [f"{name} = {settings[name]}" for name in sorted(settings)]
    return ("\n".join(lines) + "\n").encode("utf-8")


class Plugin(engine.PluginBase):
    def _previous_files(self, path: str) -> List[str]:
        """Files an earlier setup wrote under another name (the recipe changed
        priority or file) that are still there: found in the state registry."""
        return [old for old, record in sorted(self.state.files("setup").items())
                if record.get("written_by") == WRITTEN_BY and old != path
                and os.path.lexists(self.resolve(old, follow_last=False))]

    @engine.event(stage=Stages.VALIDATION, name="setup.sysctl.plan",
                  condition=lambda self: _config.configured(self, "sysctl"))
    def _plan(self) -> None:
        cfg = _config.load(self)
        path = settings_file(cfg)
        for old in self._previous_files(path):
            self.plan(f"remove {old} (the previous setup's sysctl file)")
        if unchanged(self, path, render(cfg), MODE):
            self.log.info("sysctl settings already in %s", path)
            return
        names = ", ".join(sorted(cfg.section("sysctl")["settings"]))
        self.plan(f"write {path} ({names})" + (
            ", applied with sysctl -p" if _config.live_root(self) else
            ", applied at the next boot (the root is not /)"))

    @engine.event(stage=Stages.MISC, name="setup.sysctl.write",
                  condition=lambda self: not self.dry_run and _config.configured(self, "sysctl"))
    def _write(self) -> None:
        cfg = _config.load(self)
        path, data = settings_file(cfg), render(cfg)
        for old in self._previous_files(path):
            self.transaction.append(engine.FileRemove(old))
        if unchanged(self, path, data, MODE):
            return
        self.transaction.append(RecordedFileWrite(path, data, MODE,
                                                  info={"written_by": WRITTEN_BY}))
        if not _config.live_root(self):
            self.dialog.note(f"sysctl settings written to {path}; not applied now (the root "
                             "is not this machine's /): they take effect at the next boot")
            self.log.debug("root %s is not /: sysctl -p skipped", self.root)
            return
        self._apply(path, sorted(cfg.section("sysctl")["settings"]))

    def _apply(self, path: str, names: List[str]) -> None:
        """`sysctl -p FILE`; undo writes back the values read before."""
        old: Dict[str, str] = {}

        def prepare() -> None:
            for name in names:
                proc = self.run(["sysctl", "-n", name], check=False)
                if proc.returncode == 0:
                    old[name] = " ".join(proc.stdout.split())

        def undo() -> None:
            pairs: List[Tuple[str, str]] = sorted(old.items())
            for name, value in pairs:
                self.run(["sysctl", "-w", f"{name}={value}"])

        self.transaction.append(engine.CallbackElement(
            f"apply {path} (sysctl -p)", do=lambda: self.run(["sysctl", "-p", path]),
            undo=undo, prepare=prepare))
