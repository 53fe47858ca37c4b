"""The typed environment shared by all plugins of a run."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Optional

from installer.engine.keys import Key

log = logging.getLogger("satchel.env")

# Where a value came from; a value from one of ANSWERED is never asked again.
DEFAULT = "default"
ANSWERS = "answers"
SETTING = "--set"
DIALOG = "dialog"
PLUGIN = "plugin"
PREVIOUS = "previous"  # a value kept from an earlier run of the action (setup's state)
ANSWERED = (ANSWERS, SETTING, DIALOG, PREVIOUS)


class Environment:
    """`env["DB/host"]` reads, `env["DB/host"] = "db1"` writes a declared key.

    Writes are type-checked against the key and logged (secrets masked by key,
    with the step that made the change). Reading or writing an undeclared key is
    a KeyError naming it.
    """

    def __init__(self, keys: Dict[str, Key]) -> None:
        self.keys = dict(keys)
        self._values: Dict[str, Any] = {k.name: k.default for k in keys.values()}
        self._sources: Dict[str, str] = {k: DEFAULT for k in keys}
        self.step = "engine"

    def _key(self, name: str) -> Key:
        try:
            return self.keys[name]
        except KeyError:
            raise KeyError(f"undeclared environment key {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        self._key(name)
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self[name]
        return default if value is None else value

    def __setitem__(self, name: str, value: Any) -> None:
        self.set(name, value, source=PLUGIN)

    def __contains__(self, name: object) -> bool:
        return name in self.keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.keys))

    def set(self, name: str, value: Any, source: str = PLUGIN,
            origin: Optional[str] = None) -> None:
        """Set a value (type-checked), remembering its source and logging it."""
        key = self._key(name)
        value = key.check(value)
        old = self._values[name]
        self._values[name] = value
        self._sources[name] = source
        if old != value or source != PLUGIN:
            where = origin or source
            log.debug("env %s: %s = %s (was %s) [%s]", self.step, name, key.show(value),
                      key.show(old), where)

    def source(self, name: str) -> str:
        """Where the current value came from: default, answers, --set, dialog, plugin."""
        self._key(name)
        return self._sources[name]

    def answered(self, name: str) -> bool:
        """True if the user gave this value (answer file, --set or a question)."""
        return self.source(name) in ANSWERED

    def missing_required(self) -> List[str]:
        """Names of required keys that still have no value."""
        return sorted(n for n, k in self.keys.items() if k.required and self._values[n] is None)

    def masked(self) -> Dict[str, str]:
        """Every key with its value as it may be shown (secrets masked)."""
        return {n: self.keys[n].show(self._values[n]) for n in sorted(self.keys)}
