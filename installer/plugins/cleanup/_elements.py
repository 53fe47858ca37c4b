"""Transaction elements of cleanup: removals whose records drop setup's records."""

from __future__ import annotations

import os
import stat
from typing import Any, Dict, List

from installer import engine
from installer.engine import fsutil
from installer.engine.paths import target_path
from installer.engine.transaction import TransactionElement
from installer.plugins.cleanup._facts import SETUP


class RemoveFile(engine.FileRemove):
    """FileRemove whose record drops setup's record (not one of cleanup's own)."""

    def records(self) -> List[Dict[str, Any]]:
        return [dict(r, action=SETUP) for r in super().records()]


class RemoveDir(TransactionElement):
    """Remove an empty directory; undo makes it again with its mode and owner.
    A directory that is not empty (any more) is left alone."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.removed = False

    def describe(self) -> str:
        return f"remove empty directory {self.path}"

    def prepare(self) -> None:
        self.host = self.txn.resolve(self.path, follow_last=False)
        self.target = target_path(self.txn.root, self.host)
        st = os.lstat(self.host)
        self.mode, self.uid, self.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        self.empty = stat.S_ISDIR(st.st_mode) and not os.listdir(self.host)

    def commit(self) -> None:
        if self.empty:
            os.rmdir(self.host)
            fsutil.fsync_dir(self.host.parent)
            self.removed = True

    def undo(self) -> None:
        if self.removed:
            os.mkdir(self.host, 0o700)
            os.chown(self.host, self.uid, self.gid)
            os.chmod(self.host, self.mode)
            fsutil.fsync_dir(self.host.parent)
            self.removed = False

    def records(self) -> List[Dict[str, Any]]:
        if not self.removed:
            return []
        return [{"kind": "removed", "path": self.target, "action": SETUP}]


class PgpassRewrite(engine.FileWrite):
    """The .pgpass without setup's line: the file is the user's again (setup's
    record of it is dropped at commit)."""

    def describe(self) -> str:
        return f"remove a password line from {self.path}"

    def records(self) -> List[Dict[str, Any]]:
        return [{"kind": "removed", "path": self.target, "action": SETUP}]
