"""The transaction: elements with prepare/commit/abort, and undo of committed ones.

Elements appended during early_misc, packages and misc are prepared and committed
at once, in the order they are appended (so a later step sees the effect of an
earlier one). On any failure after validation the engine undoes every committed
element in reverse order; an undo that fails is collected and the run exits 5
with the list of what needs manual action.

An element whose prepare() does not depend on earlier steps (a database restored
into a side database, which nothing uses until commit renames it) may be started
early: `prepare_ahead(element, lane)` runs its prepare() in a background worker
while the run goes on (dnf installing packages, say), and the later
`append(element)` waits for it, then commits in the usual order. Each lane has
one worker: the elements of a lane are prepared one after the other, in the order
given; different lanes run side by side (a database restore beside the staging of
a file set). A failure anywhere aborts them with the rest of the rollback; one
never appended is aborted when the transaction ends.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from installer.errors import EXIT_ROLLBACK_INCOMPLETE, SatchelError

if TYPE_CHECKING:
    from installer.engine.journal import Journal
    from installer.engine.state import StateRegistry

log = logging.getLogger("satchel.transaction")


class RollbackIncomplete(SatchelError):
    """Undoing committed changes failed; `manual` lists what needs manual action."""

    exit_code = EXIT_ROLLBACK_INCOMPLETE

    def __init__(self, cause: str, manual: List[str]) -> None:
        lines = "\n".join(f"  - {m}" for m in manual)
        super().__init__(
            f"{cause}; rollback incomplete, manual action needed:\n{lines}",
            hint="fix the items above by hand; backups are under /var/lib/satchel/backup")
        self.manual = list(manual)


class TransactionElement:
    """One change to the target. Subclasses override prepare/commit/abort/undo.

    prepare() does everything that can fail without touching what the target
    uses (temp files, backups, checks); commit() makes the change; abort() cleans
    up after a failed prepare or commit; undo() reverts a committed change.
    `step_id`, when set, names the step in the journal: an interrupted run that is
    started again skips elements whose step_id was already committed.
    """

    step_id: Optional[str] = None
    txn: Transaction

    def describe(self) -> str:
        """One line for logs, plans and the manual-action list."""
        return type(self).__name__

    def bind(self, txn: Transaction) -> None:
        self.txn = txn

    def prepare(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def undo(self) -> None:
        pass

    def records(self) -> List[Dict[str, Any]]:
        """State records of a committed element (see StateRegistry.apply)."""
        return []


class Transaction:
    """The run's transaction; plugins reach it as `self.transaction`."""

    def __init__(self, root: pathlib.Path, backup_dir: pathlib.Path,
                 resolve: Callable[..., pathlib.Path], state: StateRegistry,
                 journal: Journal) -> None:
        self.root = root
        self.backup_dir = backup_dir
        self.resolve = resolve
        self.state = state
        self.journal = journal
        self.committed: List[TransactionElement] = []
        self.is_open = False
        self._backups: Dict[str, int] = {}  # target -> backups made of it
        self._ahead: List[_Ahead] = []  # prepared ahead, not yet appended
        self._ahead_lock = threading.Lock()
        self._lanes: Dict[str, List[_Ahead]] = {}  # lane -> waiting for its worker

    def begin(self) -> None:
        self.is_open = True
        log.debug("transaction begins")

    def end(self) -> None:
        if self._ahead:
            log.warning("aborting %d element(s) prepared ahead but never appended",
                        len(self._ahead))
            self._abort_ahead()
        self.is_open = False
        log.debug("transaction ends with %d committed element(s)", len(self.committed))

    def backup_path(self, target: str) -> pathlib.Path:
        """A fresh place for the backup of target path `target` (never beside it):
        <backup_dir>/<n>/<target>, n counting the backups of that same target, so
        the backups of many files share one tree."""
        rel = target.lstrip("/")
        n = self._backups.get(rel, 0) + 1
        self._backups[rel] = n
        return self.backup_dir / str(n) / rel

    def prepare_ahead(self, element: TransactionElement, lane: str = "main") -> None:
        """Start `element`'s prepare() in the worker of `lane` (after the elements
        given to that lane before it); `append(element)` later waits for it and
        commits. Nothing happens for a step that the journal says an interrupted run
        already committed (append skips it)."""
        if not self.is_open:
            raise SatchelError(f"{element.describe()}: the transaction is not open",
                               hint="prepare elements ahead during early_misc or later")
        if element.step_id and self.journal.done(element.step_id):
            return
        element.bind(self)
        ahead = _Ahead(element)
        with self._ahead_lock:
            self._ahead.append(ahead)
            queue = self._lanes.get(lane)
            if queue is None:  # no worker in this lane: start one
                queue = self._lanes[lane] = []
                threading.Thread(target=self._work_ahead, args=(lane,), daemon=True,
                                 name=f"prepare-ahead-{lane}").start()
            queue.append(ahead)
        log.debug("prepare ahead %s (lane %s)", element.describe(), lane)

    def _work_ahead(self, lane: str) -> None:
        while True:
            with self._ahead_lock:
                queue = self._lanes[lane]
                if not queue:
                    del self._lanes[lane]
                    return
                ahead = queue.pop(0)
            try:
                if not ahead.cancelled:
                    ahead.element.prepare()
            except BaseException as exc:  # re-raised by append() in the main thread
                ahead.error = exc
            finally:
                ahead.done.set()

    def _take_ahead(self, element: TransactionElement) -> Optional[_Ahead]:
        for ahead in self._ahead:
            if ahead.element is element:
                self._ahead.remove(ahead)
                return ahead
        return None

    def _abort_ahead(self) -> None:
        """Abort every element prepared ahead and not appended (after its prepare
        has finished: a running one is waited for)."""
        with self._ahead_lock:
            pending, self._ahead = self._ahead, []
            for ahead in pending:
                ahead.cancelled = True
        for ahead in reversed(pending):
            ahead.done.wait()
            log.debug("abort %s (prepared ahead)", ahead.element.describe())
            try:
                ahead.element.abort()
            except Exception as exc:
                log.error("abort of %s failed: %s", ahead.element.describe(), exc)

    def append(self, element: TransactionElement) -> bool:
        """Prepare and commit `element` now; False if the journal says a previous,
        interrupted run already committed it (then it is skipped). An element given
        to prepare_ahead() is not prepared again: its prepare is waited for."""
        if not self.is_open:
            raise SatchelError(f"{element.describe()}: the transaction is not open",
                               hint="append elements during early_misc, packages or misc")
        step = element.step_id
        if step and self.journal.done(step):
            log.info("resuming: %s already done (step %s)", element.describe(), step)
            self.state.apply(self.journal.records(step))
            return False
        ahead = self._take_ahead(element)
        element.bind(self)
        try:
            if ahead is None:
                log.debug("prepare %s", element.describe())
                element.prepare()
            else:
                if not ahead.done.is_set():
                    log.debug("waiting for %s (prepared ahead)", element.describe())
                ahead.done.wait()
                if ahead.error is not None:
                    raise ahead.error
            log.debug("commit %s", element.describe())
            element.commit()
        except BaseException:
            log.debug("abort %s", element.describe())
            try:
                element.abort()
            except Exception as exc:  # the original error matters more
                log.error("abort of %s failed: %s", element.describe(), exc)
            raise
        self.committed.append(element)
        records = element.records()
        self.state.apply(records)
        if step:
            self.journal.mark(step, records)
        log.info("done: %s", element.describe())
        return True

    def changes(self) -> int:
        """How many committed elements changed the target (the state registry's own
        writes are bookkeeping, not changes)."""
        return sum(1 for e in self.committed if not getattr(e, "bookkeeping", False))

    def rollback(self) -> List[str]:
        """Undo committed elements, newest first, after aborting any element prepared
        ahead. Returns what could not be undone."""
        self._abort_ahead()
        manual: List[str] = []
        while self.committed:
            element = self.committed.pop()
            log.info("undo: %s", element.describe())
            try:
                element.undo()
            except Exception as exc:
                log.error("undo of %s failed: %s", element.describe(), exc)
                manual.append(f"{element.describe()}: {exc}")
                continue
            if element.step_id:
                self.journal.unmark(element.step_id)
        self.is_open = False
        return manual

    def discard_backups(self) -> None:
        """Remove this run's backup directory (after a complete rollback)."""
        import shutil

        if self.backup_dir.exists():
            shutil.rmtree(self.backup_dir, ignore_errors=True)
        parent = self.backup_dir.parent
        if parent.is_dir() and not any(parent.iterdir()):
            os.rmdir(parent)


class _Ahead:
    """An element whose prepare() runs in the transaction's background worker."""

    def __init__(self, element: TransactionElement) -> None:
        self.element = element
        self.done = threading.Event()
        self.error: Optional[BaseException] = None
        self.cancelled = False
