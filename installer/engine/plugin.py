"""The plugin API: PluginBase, the @event decorator and priorities (otopi-like).

    from installer import engine
    from installer.engine import Stages

    class Plugin(engine.PluginBase):
        KEYS = (engine.Key("DEMO/motd", str, default="hi", doc="message of the day"),)

        @engine.event(stage=Stages.MISC, name="demo.motd", after=("core.dirs",))
        def _write(self) -> None:
            self.transaction.append(engine.FileWrite("/etc/motd", b"hi\\n", 0o644))
"""

from __future__ import annotations

import logging
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple

from installer.engine.keys import Key
from installer.engine.stages import Stages

if TYPE_CHECKING:
    from installer.engine.context import Context

# Lower runs first among events whose before/after leave them free.
PRIO_FIRST = 1000
PRIO_HIGH = 2000
PRIO_DEFAULT = 5000
PRIO_LOW = 7000
PRIO_LAST = 9000

_MARK = "_satchel_event"


@dataclass(frozen=True)
class EventSpec:
    stage: Stages
    name: Optional[str]
    before: Tuple[str, ...]
    after: Tuple[str, ...]
    priority: int
    condition: Optional[Callable[[Any], bool]]


def event(stage: Stages, name: Optional[str] = None, before: Sequence[str] = (),
          after: Sequence[str] = (), priority: int = PRIO_DEFAULT,
          condition: Optional[Callable[[Any], bool]] = None) -> Callable[[Any], Any]:
    """Register a plugin method for `stage`. `name` defaults to
    '<module>.<method>'; `before`/`after` name events of the same stage;
    `condition(self)` returning False skips the method at run time."""
    if not isinstance(stage, Stages):
        raise TypeError(f"event stage must be a Stages member, got {stage!r}")
    if isinstance(before, str) or isinstance(after, str):
        raise TypeError("before/after take a tuple of event names, not a string")
    spec = EventSpec(stage, name, tuple(before), tuple(after), int(priority), condition)

    def mark(func: Any) -> Any:
        setattr(func, _MARK, spec)
        return func

    return mark


@dataclass
class Event:
    """One registered method of one plugin instance."""

    stage: Stages
    name: str
    before: Tuple[str, ...]
    after: Tuple[str, ...]
    priority: int
    condition: Optional[Callable[[Any], bool]]
    plugin: PluginBase
    method: Callable[[], Any]

    def enabled(self) -> bool:
        return self.condition is None or bool(self.condition(self.plugin))


class PluginBase:
    """Base of every plugin. The attributes below are the plugin's whole context:

    env, root, resolve(path), transaction, state, journal, run(argv, **kw), log,
    dialog, dry_run, bundle, action, plan(text), planned, plugin_path (the folder of
    the plugin's module, or the plugin's own folder for a folder plugin).
    """

    KEYS: Tuple[Key, ...] = ()
    plugin_path: Optional[pathlib.Path] = None

    def __init__(self, context: Context) -> None:
        self._context = context
        self.log = logging.getLogger(f"satchel.plugin.{type(self).__module__.split('.')[-1]}")

    # The context, as attributes (fixed names other parts code against).
    @property
    def env(self) -> Any:
        return self._context.env

    @property
    def root(self) -> pathlib.Path:
        return self._context.root

    @property
    def transaction(self) -> Any:
        return self._context.transaction

    @property
    def state(self) -> Any:
        return self._context.state

    @property
    def journal(self) -> Any:
        return self._context.journal

    @property
    def dialog(self) -> Any:
        return self._context.dialog

    @property
    def dry_run(self) -> bool:
        return self._context.dry_run

    @property
    def bundle(self) -> Optional[pathlib.Path]:
        return self._context.bundle

    @property
    def action(self) -> str:
        return self._context.action

    def resolve(self, path: Any, follow_last: bool = True) -> pathlib.Path:
        """Absolute host path of target path `path` under root (InputError if it escapes)."""
        return self._context.resolve(path, follow_last=follow_last)

    def run(self, argv: Sequence[Any], **kwargs: Any) -> Any:
        """installer.engine.process.run (logged, LANG=C.UTF-8, ToolError on failure)."""
        return self._context.run(argv, **kwargs)

    @property
    def planned(self) -> List[str]:
        """The plan lines added so far (by every plugin of the run)."""
        return list(self._context.plan_lines)

    def plan(self, text: str) -> None:
        """Add a line to the plan shown by --dry-run and before confirmation."""
        self._context.plan(text)

    def events(self) -> List[Event]:
        """The events this plugin registers, found through the @event marks."""
        out = []
        mod = type(self).__module__.split(".")[-1]
        for attr in sorted(dir(type(self))):
            func = getattr(type(self), attr, None)
            spec = getattr(func, _MARK, None)
            if not isinstance(spec, EventSpec):
                continue
            out.append(Event(spec.stage, spec.name or f"{mod}.{attr}", spec.before,
                             spec.after, spec.priority, spec.condition, self,
                             getattr(self, attr)))
        return out
