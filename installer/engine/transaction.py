"""The transaction: elements with prepare/commit/abort, and undo of committed ones.

Elements appended during early_misc, packages and misc are prepared and committed
at once, in the order they are appended (so a later step sees the effect of an
earlier one). On any failure after validation the engine undoes every committed
element in reverse order; an undo that fails is collected and the run exits 5
with the list of what needs manual action.
"""

from __future__ import annotations

import logging
import os
import pathlib
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
        self._backups = 0

    def begin(self) -> None:
        self.is_open = True
        log.debug("transaction begins")

    def end(self) -> None:
        self.is_open = False
        log.debug("transaction ends with %d committed element(s)", len(self.committed))

    def backup_path(self, target: str) -> pathlib.Path:
        """A fresh place for the backup of target path `target` (never beside it)."""
        self._backups += 1
        return self.backup_dir / str(self._backups) / target.lstrip("/")

    def append(self, element: TransactionElement) -> bool:
        """Prepare and commit `element` now; False if the journal says a previous,
        interrupted run already committed it (then it is skipped)."""
        if not self.is_open:
            raise SatchelError(f"{element.describe()}: the transaction is not open",
                               hint="append elements during early_misc, packages or misc")
        step = element.step_id
        if step and self.journal.done(step):
            log.info("resuming: %s already done (step %s)", element.describe(), step)
            self.state.apply(self.journal.records(step))
            return False
        element.bind(self)
        log.debug("prepare %s", element.describe())
        try:
            element.prepare()
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
        """Undo committed elements, newest first. Returns what could not be undone."""
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
