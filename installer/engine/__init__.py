"""satchel's installer engine: otopi-style stages and plugins, a typed environment,
answer files, dialogs, transactions that really roll back, lock, journal, logs.

Standard library only, Python 3.9+. Plugins use the names re-exported here.
"""

from installer.engine.actions import ACTIONS, Action, groups_of
from installer.engine.context import Context
from installer.engine.dialog import Dialog, HumanDialog, MachineDialog
from installer.engine.elements import (
    CallbackElement,
    FileRemove,
    FileWrite,
    MakeDirs,
    SecretFileWrite,
    Symlink,
)
from installer.engine.environment import Environment
from installer.engine.journal import Journal
from installer.engine.keys import Key, parse_bool
from installer.engine.lock import RunLock
from installer.engine.ordering import PluginError
from installer.engine.paths import resolve_under
from installer.engine.plugin import (
    PRIO_DEFAULT,
    PRIO_FIRST,
    PRIO_HIGH,
    PRIO_LAST,
    PRIO_LOW,
    Event,
    PluginBase,
    event,
)
from installer.engine.process import check_tool
from installer.engine.runner import Runner, run
from installer.engine.stages import Stages
from installer.engine.state import StateRegistry
from installer.engine.transaction import RollbackIncomplete, Transaction, TransactionElement

__all__ = [
    "ACTIONS",
    "PRIO_DEFAULT",
    "PRIO_FIRST",
    "PRIO_HIGH",
    "PRIO_LAST",
    "PRIO_LOW",
    "Action",
    "CallbackElement",
    "Context",
    "Dialog",
    "Environment",
    "Event",
    "FileRemove",
    "FileWrite",
    "HumanDialog",
    "Journal",
    "Key",
    "MachineDialog",
    "MakeDirs",
    "PluginBase",
    "PluginError",
    "RollbackIncomplete",
    "RunLock",
    "Runner",
    "SecretFileWrite",
    "Stages",
    "StateRegistry",
    "Symlink",
    "Transaction",
    "TransactionElement",
    "check_tool",
    "event",
    "groups_of",
    "parse_bool",
    "resolve_under",
    "run",
]
