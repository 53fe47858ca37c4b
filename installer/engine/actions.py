"""Actions and the plugin groups they run (folders under installer/plugins/).

A group package may define `add_arguments(parser)` and `settings_from_args(args)
-> {KEY: "value"}` in its __init__.py to add options of its own (cleanup's -d/-u);
the table can give them too.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

AddArguments = Callable[[argparse.ArgumentParser], None]
SettingsFromArgs = Callable[[argparse.Namespace], Dict[str, str]]


@dataclass(frozen=True)
class Action:
    name: str
    groups: Tuple[str, ...]
    help: str
    add_arguments: Optional[AddArguments] = None
    settings_from_args: Optional[SettingsFromArgs] = None


ACTIONS: Dict[str, Action] = {a.name: a for a in (
    Action("import", ("core", "importer"),
           "restore the bundle's node: packages, files, database, setup, services"),
    Action("setup", ("core", "setup"), "configure (or reconfigure, upgrade) the installed node"),
    Action("cleanup", ("core", "cleanup"), "undo setup so that setup can run again"),
    Action("hooks", ("core", "hooks"), "install vdsm hooks onto a virtualization host"),
    Action("vmcatcher", ("core", "vmcatcher"),
           "register the OpenNebula vmcatcher event handler"),
    Action("demo", ("core", "demo"), "write a demo file (exercises the engine)"),
)}


def groups_of(action: str) -> Tuple[str, ...]:
    """The plugin groups of `action` (an action not in the table runs core + its name)."""
    found = ACTIONS.get(action)
    return found.groups if found else ("core", action)
