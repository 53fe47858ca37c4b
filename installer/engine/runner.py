"""One run of an action: load plugins, fill the environment, run the stages,
roll back on failure, report. `engine.run(...)` is the programmatic entry."""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
import sys
import traceback
from typing import IO, Any, Collection, Dict, List, Mapping, Optional, Sequence, Type, Union

from installer.engine import answers as answer_files
from installer.engine.actions import groups_of
from installer.engine.context import Context
from installer.engine.dialog import Dialog, make_dialog
from installer.engine.environment import SETTING, Environment
from installer.engine.journal import Journal
from installer.engine.keys import Key, parse_setting
from installer.engine.loader import load_plugins
from installer.engine.lock import RunLock
from installer.engine.logs import RunLogging, default_log_path
from installer.engine.ordering import PluginError, build_sequence, describe
from installer.engine.plugin import Event, PluginBase
from installer.engine.stages import ALWAYS_RUN, FIRST_CHANGING, ORDER, Stages, stage_by_name
from installer.engine.state import StateRegistry
from installer.engine.transaction import RollbackIncomplete, Transaction
from installer.errors import EXIT_FAILED, EXIT_OK, InputError, RefusedError, SatchelError

log = logging.getLogger("satchel.engine")
FAIL_AT_VAR = "SATCHEL_FAIL_AT"
STATE_DIR = "var/lib/satchel"

PathArg = Union[str, "os.PathLike[str]"]


class Runner:
    """A run of one action. run() returns the exit code and never raises a
    SatchelError; afterwards `error`, `log_path`, `context` tell what happened."""

    def __init__(self, action: str, *, root: PathArg = "/",
                 groups: Optional[Sequence[str]] = None,
                 plugin_dirs: Sequence[PathArg] = (),
                 plugins: Sequence[Type[PluginBase]] = (),
                 answers: Sequence[PathArg] = (),
                 settings: Union[Mapping[str, Any], Sequence[str], None] = None,
                 unattended: bool = False, dialog: str = "human", dry_run: bool = False,
                 log_file: Optional[PathArg] = None, debug: bool = False,
                 bundle: Optional[PathArg] = None,
                 generate_answer: Optional[PathArg] = None,
                 generate_answer_secrets: bool = False,
                 foreign_keys: Collection[str] = (),
                 stdin: Optional[IO[str]] = None, stdout: Optional[IO[str]] = None,
                 stderr: Optional[IO[str]] = None) -> None:
        self.action = action
        self.root = pathlib.Path(os.path.abspath(root))
        self.groups = tuple(groups) if groups is not None else groups_of(action)
        self.plugin_dirs = [pathlib.Path(d) for d in plugin_dirs]
        self.extra_plugins = list(plugins)
        self.answers = [pathlib.Path(a) for a in answers]
        self.settings = settings
        self.unattended = unattended
        self.dialog_kind = dialog
        self.dry_run = dry_run
        self.log_file = pathlib.Path(log_file) if log_file else None
        self.debug = debug
        self.bundle = pathlib.Path(bundle) if bundle else None
        self.generate_answer = pathlib.Path(generate_answer) if generate_answer else None
        self.generate_answer_secrets = generate_answer_secrets
        # Actions chained in one command (import, then setup) share answers and --set
        # values: keys the other action declares are skipped here, not errors.
        self.foreign_keys = frozenset(foreign_keys)
        self.stdin, self.stdout = stdin, stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.run_id = self.started.strftime("%Y%m%dT%H%M%S.%fZ") + f"-{os.getpid()}"
        self.state_dir = self.root / STATE_DIR
        self.error: Optional[SatchelError] = None
        self.log_path: Optional[pathlib.Path] = None
        self.context: Optional[Context] = None
        self.sequence: Dict[Stages, List[Event]] = {}
        self.dialog: Optional[Dialog] = None

    # -- the whole run -----------------------------------------------------------
    def run(self) -> int:
        logs: Optional[RunLogging] = None
        lock: Optional[RunLock] = None
        try:
            try:
                self._check_root()
                fail_at = self._fail_at()
                if self.log_file is not None:
                    self.log_path = pathlib.Path(os.path.abspath(self.log_file))
                elif not self.dry_run:
                    self.log_path = default_log_path(self.root, self.action, self.started)
                logs = RunLogging(self.log_path, self.stderr, debug=self.debug,
                                  quiet=self.dialog_kind == "machine")
                log.info("satchel %s: root %s, run %s%s", self.action, self.root, self.run_id,
                         " (dry run)" if self.dry_run else "")
                if not self.dry_run:
                    lock = RunLock(self.state_dir / "lock")
                    lock.acquire()
                self._prepare()
            except SatchelError as exc:
                return self._finish(exc)
            except Exception as exc:
                return self._finish(self._unexpected(exc))
            return self._finish(self._stages(fail_at))
        finally:
            if lock is not None:
                lock.release()
            if logs is not None:
                logs.close()

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise InputError(f"root {self.root} is not a directory")
        if str(self.root.resolve()) == "/" and os.geteuid() != 0 and not self.dry_run:
            raise RefusedError("refusing to change / as a non-root user",
                               hint="run as root, or install into an image with --root DIR")

    @staticmethod
    def _fail_at() -> Optional[Stages]:
        value = os.environ.get(FAIL_AT_VAR, "").strip()
        if not value:
            return None
        try:
            return stage_by_name(value)
        except ValueError as exc:
            raise InputError(f"{FAIL_AT_VAR}: {exc}") from None

    def _prepare(self) -> None:
        """Everything before the first stage: plugins, keys, order, environment."""
        found = load_plugins(self.groups, self.plugin_dirs, self.bundle, self.root)
        found += [(cls, pathlib.Path(sys.modules[cls.__module__].__file__ or ".").parent)
                  for cls in self.extra_plugins]
        keys = _collect_keys([cls for cls, _ in found])
        env = Environment(keys)
        self.dialog = make_dialog(self.dialog_kind, env, self.unattended,
                                  self.stdin, self.stdout, self.stderr)
        state = StateRegistry(self.state_dir, self.action, self.run_id)
        journal = Journal(self.state_dir, self.action, enabled=not self.dry_run)
        ctx = Context(self.action, self.root, env, self.dialog, state, journal,
                      Transaction(self.root, self.state_dir / "backup" / self.run_id,
                                  lambda p, follow_last=True: ctx.resolve(p, follow_last),
                                  state, journal),
                      dry_run=self.dry_run, bundle=self.bundle)
        self.context = ctx
        events: List[Event] = []
        for cls, where in found:
            plugin = cls(ctx)
            plugin.plugin_path = where
            events.extend(plugin.events())
        self.sequence = build_sequence(events)
        for line in describe(self.sequence):
            log.debug("sequence: %s", line)
        answer_files.load_answers(env, self.answers, foreign=self.foreign_keys)
        self._apply_settings(env)
        if journal.resuming:
            log.info("resuming an interrupted %s: %d step(s) already done",
                     self.action, len(journal.steps()))

    def _apply_settings(self, env: Environment) -> None:
        if not self.settings:
            return
        if isinstance(self.settings, Mapping):
            for name, value in self.settings.items():
                if name not in env.keys and name in self.foreign_keys:
                    continue
                if name not in env.keys:
                    raise InputError(f"--set: unknown key {name!r}")
                if isinstance(value, str):
                    key, value = parse_setting(env.keys, f"{name}={value}", "--set")
                else:
                    try:
                        env.keys[name].check(value)
                    except (TypeError, ValueError) as exc:
                        raise InputError(f"--set: {exc}") from None
                env.set(name, value, source=SETTING)
        else:
            for text in self.settings:
                name = text.partition("=")[0].strip()
                if name not in env.keys and name in self.foreign_keys:
                    continue
                key, value = parse_setting(env.keys, text, "--set")
                env.set(key.name, value, source=SETTING)

    # -- the stages ---------------------------------------------------------------
    def _stages(self, fail_at: Optional[Stages]) -> Optional[SatchelError]:
        ctx = self.context
        assert ctx is not None
        failure: Optional[SatchelError] = None
        stopped = False
        for stage in ORDER:
            if (failure is not None or stopped) and stage not in ALWAYS_RUN:
                log.debug("stage %s: skipped", stage.value)
                continue
            try:
                self._stage(stage, fail_at)
            except BaseException as exc:
                error = self._unexpected(exc) if not isinstance(exc, SatchelError) else exc
                if failure is not None:
                    log.error("stage %s failed too: %s", stage.value, error)
                    continue
                log.error("stage %s failed: %s", stage.value, error)
                failure = self._roll_back(error, stage)
            if stage == Stages.VALIDATION and self.dry_run and failure is None:
                self._print_plan()
                stopped = True
        if failure is None and not self.dry_run:
            ctx.journal.clear()
        return failure

    def _stage(self, stage: Stages, fail_at: Optional[Stages]) -> None:
        ctx = self.context
        assert ctx is not None
        ctx.env.step = stage.value
        log.debug("stage %s", stage.value)
        if stage == fail_at:
            raise SatchelError(f"failure injected at stage {stage.value} ({FAIL_AT_VAR})")
        if stage == Stages.TRANSACTION_BEGIN:
            ctx.transaction.begin()
        elif stage == Stages.CLOSEUP:
            # Closeup may still change things (start services, post-setup commands):
            # such elements are undone with the rest when a later closeup step fails.
            ctx.transaction.begin()
            late = len(ctx.transaction.committed)
        for ev in self.sequence.get(stage, []):
            if not ev.enabled():
                log.debug("  %s: condition false, skipped", ev.name)
                continue
            ctx.env.step = ev.name
            log.debug("  %s", ev.name)
            ev.method()
        ctx.env.step = stage.value
        if stage == Stages.CUSTOMIZATION:
            missing = ctx.env.missing_required()
            if missing:
                raise InputError(f"no value for required key(s) {', '.join(missing)}",
                                 hint="give them with --set KEY=VALUE or in an answer file")
        elif stage == Stages.VALIDATION and self.generate_answer is not None:
            left_out = answer_files.write_answers(ctx.env, self.generate_answer,
                                                  self.generate_answer_secrets)
            log.info("answers written to %s%s", self.generate_answer,
                     f" (secrets left out: {', '.join(left_out)})" if left_out else "")
        elif stage == Stages.TRANSACTION_END:
            ctx.transaction.append(ctx.state.commit_element())
            ctx.transaction.end()
        elif stage == Stages.CLOSEUP:
            if len(ctx.transaction.committed) > late:  # their records into the registry
                ctx.transaction.append(ctx.state.commit_element())
            ctx.transaction.end()

    def _roll_back(self, error: SatchelError, stage: Stages) -> SatchelError:
        ctx = self.context
        assert ctx is not None
        if ORDER.index(stage) < ORDER.index(FIRST_CHANGING) and not ctx.transaction.committed:
            return error
        count = len(ctx.transaction.committed)
        log.info("rolling back %d committed change(s)", count)
        manual = ctx.transaction.rollback()
        if manual:
            return RollbackIncomplete(f"{error.message} (at stage {stage.value})", manual)
        ctx.transaction.discard_backups()
        rolled = SatchelError(f"{error.message} (at stage {stage.value}); "
                              f"rolled back {count} change(s)", hint=error.hint,
                              exit_code=EXIT_FAILED)
        return rolled

    def _print_plan(self) -> None:
        ctx = self.context
        assert ctx is not None and self.dialog is not None
        lines = ctx.plan_lines or ["(no changes)"]
        self.dialog.note("Plan of changes:\n" + "\n".join(f"  - {line}" for line in lines))
        self.dialog.note("dry run: nothing was changed")

    # -- reporting ------------------------------------------------------------------
    def _unexpected(self, exc: BaseException) -> SatchelError:
        if isinstance(exc, KeyboardInterrupt):
            return SatchelError("interrupted")
        log.debug("traceback:\n%s", "".join(traceback.format_exception(
            type(exc), exc, exc.__traceback__)))
        return SatchelError(f"unexpected error: {type(exc).__name__}: {exc}",
                            hint="this is a bug; run with --debug for the traceback")

    def _finish(self, error: Optional[SatchelError]) -> int:
        self.error = error
        dialog = self.dialog
        if dialog is None:  # failed before the dialog existed
            kind = "machine" if self.dialog_kind == "machine" else "human"
            dialog = make_dialog(kind, Environment({}), True, self.stdin, self.stdout,
                                 self.stderr)
        if error is not None:
            log.error("%s failed: %s", self.action, error.message)
            dialog.error(error)
        else:
            log.info("%s done", self.action)
        if self.log_path is not None and self.log_path.exists():
            dialog.note(f"log: {self.log_path}")
        return error.exit_code if error is not None else EXIT_OK


def _collect_keys(classes: Sequence[Type[PluginBase]]) -> Dict[str, Key]:
    keys: Dict[str, Key] = {}
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        declared = tuple(getattr(cls, "KEYS", ())) + tuple(getattr(module, "KEYS", ()))
        for key in declared:
            if not isinstance(key, Key):
                raise PluginError(f"{cls.__module__}: KEYS holds {key!r}, not an engine.Key")
            if key.name in keys and keys[key.name] != key:
                raise PluginError(f"key {key.name} is declared twice, differently "
                                  f"({cls.__module__})")
            keys[key.name] = key
    return keys


def run(action: str, **kwargs: Any) -> int:
    """Run `action` and return its exit code; keyword arguments as Runner's."""
    return Runner(action, **kwargs).run()
