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
class Verb:
    """A sub-verb after the action name (`install vmcatcher handle`). `entry`
    ("module:function") is called with the arguments after the verb instead of an
    engine run and returns the exit code; None runs the engine for the action."""

    name: str
    help: str
    entry: Optional[str] = None


@dataclass(frozen=True)
class Action:
    name: str
    groups: Tuple[str, ...]
    help: str
    add_arguments: Optional[AddArguments] = None
    settings_from_args: Optional[SettingsFromArgs] = None
    verbs: Tuple[Verb, ...] = ()  # when given, one of them must follow the action


ACTIONS: Dict[str, Action] = {a.name: a for a in (
    Action("import", ("core", "importer"),
           "restore the bundle's node: packages, files, database, setup, services"),
    Action("setup", ("core", "setup"), "configure (or reconfigure, upgrade) the installed node"),
    Action("cleanup", ("core", "cleanup"), "undo setup so that setup can run again"),
    Action("hooks", ("core", "hooks"), "install vdsm hooks onto a virtualization host"),
    Action("vmcatcher", ("core", "vmcatcher"),
           "register the OpenNebula vmcatcher event handler, or handle one event",
           verbs=(Verb("register", "write the handler's config and credentials and wire "
                                   "it into vmcatcher's environment file"),
                  Verb("handle", "handle one vmcatcher event (run by vmcatcher; no engine, "
                                 "never prompts; options: --root, --config, --debug)",
                       entry="installer.vmcatcher.__main__:main"))),
    Action("demo", ("core", "demo"), "write a demo file (exercises the engine)"),
)}


def groups_of(action: str) -> Tuple[str, ...]:
    """The plugin groups of `action` (an action not in the table runs core + its name)."""
    found = ACTIONS.get(action)
    return found.groups if found else ("core", action)
