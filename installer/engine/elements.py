"""Ready transaction elements: FileWrite, FileRemove, MakeDirs, Symlink, CallbackElement.

Paths are target paths ("/etc/foo.conf"), resolved under --root when the element
is appended (a host path already under root, from self.resolve(), is accepted too).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat
from typing import Any, Callable, Dict, List, Optional, Union

from installer.engine import fsutil
from installer.engine.paths import gid_of, target_path, uid_of
from installer.engine.transaction import TransactionElement
from installer.errors import InputError, SatchelError

PathArg = Union[str, pathlib.PurePath]
Owner = Union[str, int, None]



def _remove_dirs(created: List[pathlib.Path]) -> None:
    for d in reversed(created):
        if d.is_dir():
            os.rmdir(d)
            fsutil.fsync_dir(d.parent)


class MakeDirs(TransactionElement):
    """Create a directory and its missing parents with mode and owner; undo removes
    only the directories it created (an undo finding one not empty fails)."""

    def __init__(self, path: PathArg, mode: int = 0o755, owner: Owner = None,
                 group: Owner = None, step_id: Optional[str] = None) -> None:
        self.path, self.mode, self.owner, self.group = path, mode, owner, group
        self.step_id = step_id
        self.created: List[pathlib.Path] = []
        self._todo: List[pathlib.Path] = []

    def describe(self) -> str:
        return f"make directory {self.path} (mode {self.mode:04o})"

    def prepare(self) -> None:
        self.host = self.txn.resolve(self.path)
        self.uid = uid_of(self.txn.root, self.owner)
        self.gid = gid_of(self.txn.root, self.group)
        self._todo = fsutil.missing_dirs(self.host)

    def commit(self) -> None:
        for d in self._todo:
            os.mkdir(d, 0o700)
            self.created.append(d)
            os.chown(d, self.uid, self.gid)
            os.chmod(d, self.mode)
            fsutil.fsync_dir(d.parent)

    def abort(self) -> None:
        _remove_dirs(self.created)
        self.created = []

    undo = abort

    def records(self) -> List[Dict[str, Any]]:
        return [{"kind": "dir", "path": target_path(self.txn.root, d)} for d in self.created]


class _Replacing(TransactionElement):
    """Shared by elements that replace or remove a path: backup and restore."""

    backup: Optional[pathlib.Path] = None
    old_link: Optional[str] = None
    host: pathlib.Path
    target: str

    def _save_old(self) -> None:
        self.backup, self.old_link = None, None
        if self.host.is_symlink():
            self.old_link = os.readlink(self.host)
        elif self.host.is_file():
            self.backup = self.txn.backup_path(self.target)
            fsutil.backup_copy(self.host, self.backup)
        elif os.path.lexists(self.host):
            raise InputError(f"{self.target} exists and is not a regular file or a symlink")

    def _restore_old(self) -> None:
        if self.backup is not None:
            fsutil.restore_copy(self.backup, self.host)
            fsutil.restorecon(self.host, self.txn.root)
        elif self.old_link is not None:
            tmp = self.host.with_name(f".satchel-{os.getpid()}-{self.host.name}.lnk")
            os.symlink(self.old_link, tmp)
            os.replace(tmp, self.host)
            fsutil.fsync_dir(self.host.parent)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.host)
            fsutil.fsync_dir(self.host.parent)

    @property
    def how(self) -> str:
        return "replaced" if self.backup or self.old_link else "created"


class FileWrite(_Replacing):
    """Write a file atomically: temp file in the same directory, fsync file and
    directory, rename; mode and owner set; restorecon where SELinux is enabled.

    Missing parent directories are created (root-owned, 0755) and removed on undo.
    A replaced file is backed up under <root>/var/lib/satchel/backup/<run-id>/ and
    restored byte for byte with its mode and owner on undo. mode/owner/group None
    keep those of the replaced file (else 0644, root). A symlink at `path` is
    followed (inside root): the file it points to is written.
    """

    def __init__(self, path: PathArg, data: bytes, mode: Optional[int] = None,
                 owner: Owner = None, group: Owner = None,
                 step_id: Optional[str] = None) -> None:
        if not isinstance(data, bytes):
            raise TypeError("FileWrite data must be bytes")
        self.path, self.data, self.mode = path, data, mode
        self.owner, self.group, self.step_id = owner, group, step_id
        self.tmp: Optional[pathlib.Path] = None
        self.parents: List[pathlib.Path] = []

    def describe(self) -> str:
        return f"write {self.path} ({len(self.data)} bytes)"

    def prepare(self) -> None:
        root = self.txn.root
        self.host = self.txn.resolve(self.path)
        self.target = target_path(root, self.host)
        self.parents = fsutil.missing_dirs(self.host.parent)
        self._save_old()
        old = os.stat(self.host) if self.backup else None
        mode = self.mode if self.mode is not None else (
            stat.S_IMODE(old.st_mode) if old else 0o644)
        uid = uid_of(root, self.owner) if self.owner is not None else (old.st_uid if old else 0)
        gid = gid_of(root, self.group) if self.group is not None else (old.st_gid if old else 0)
        todo, self.parents = self.parents, []
        for d in todo:
            os.mkdir(d, 0o755)
            self.parents.append(d)
        self.tmp = fsutil.write_temp(self.host.parent, self.data, mode, uid, gid)

    def commit(self) -> None:
        assert self.tmp is not None
        os.replace(self.tmp, self.host)
        self.tmp = None
        fsutil.fsync_dir(self.host.parent)
        fsutil.restorecon(self.host, self.txn.root)

    def abort(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = None
        _remove_dirs(self.parents)

    def undo(self) -> None:
        self._restore_old()
        _remove_dirs(self.parents)

    def records(self) -> List[Dict[str, Any]]:
        root = self.txn.root
        out = [{"kind": "dir", "path": target_path(root, d)} for d in self.parents]
        out.append({"kind": "file", "path": self.target, "how": self.how,
                    "sha256": fsutil.sha256_bytes(self.data)})
        return out


class SecretFileWrite(FileWrite):
    """A FileWrite of secret content (a password file, credentials): its state record
    carries no sha256 of the secret, and it is marked `secret`."""

    def describe(self) -> str:
        return f"write {self.path} (secret, mode {self.mode or 0:04o})"

    def records(self) -> List[Dict[str, Any]]:
        out = super().records()
        for rec in out:
            if rec.get("kind") == "file":
                rec["sha256"] = None
                rec["secret"] = True
        return out


class FileRemove(_Replacing):
    """Remove a file or symlink (missing is fine); undo puts it back as it was."""

    def __init__(self, path: PathArg, step_id: Optional[str] = None) -> None:
        self.path, self.step_id = path, step_id

    def describe(self) -> str:
        return f"remove {self.path}"

    def prepare(self) -> None:
        self.host = self.txn.resolve(self.path, follow_last=False)
        self.target = target_path(self.txn.root, self.host)
        self._save_old()

    def commit(self) -> None:
        if self.backup or self.old_link:
            os.unlink(self.host)
            fsutil.fsync_dir(self.host.parent)

    def undo(self) -> None:
        if self.backup or self.old_link:
            self._restore_old()

    def records(self) -> List[Dict[str, Any]]:
        return [{"kind": "removed", "path": self.target}]


class Symlink(_Replacing):
    """Create or replace the symlink `path` -> `target` (atomically); undo restores
    whatever was there (link or file) or removes it."""

    def __init__(self, path: PathArg, target: str, step_id: Optional[str] = None) -> None:
        self.path, self.link_target, self.step_id = path, str(target), step_id

    def describe(self) -> str:
        return f"symlink {self.path} -> {self.link_target}"

    def prepare(self) -> None:
        self.host = self.txn.resolve(self.path, follow_last=False)
        self.target = target_path(self.txn.root, self.host)
        if not self.host.parent.is_dir():
            raise InputError(f"{self.path}: parent directory does not exist",
                             hint="append a MakeDirs element first")
        self._save_old()

    def commit(self) -> None:
        tmp = self.host.with_name(f".satchel-{os.getpid()}-{self.host.name}.lnk")
        os.symlink(self.link_target, tmp)
        try:
            os.replace(tmp, self.host)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsutil.fsync_dir(self.host.parent)

    def undo(self) -> None:
        self._restore_old()

    def records(self) -> List[Dict[str, Any]]:
        return [{"kind": "file", "path": self.target, "how": self.how, "sha256": None,
                 "symlink": self.link_target}]


class CallbackElement(TransactionElement):
    """Any other change: `do()` at commit, `undo()` to revert it. Without an undo
    function, a rollback lists this element as needing manual action.
    `records` are state records applied when it commits, e.g.
    [{"kind": "package", "name": "foo"}] or {"kind": "service", "name": "x"}."""

    def __init__(self, name: str, do: Callable[[], Any],
                 undo: Optional[Callable[[], Any]] = None,
                 prepare: Optional[Callable[[], Any]] = None,
                 abort: Optional[Callable[[], Any]] = None,
                 step_id: Optional[str] = None,
                 records: Optional[List[Dict[str, Any]]] = None) -> None:
        self.name, self._do, self._undo = name, do, undo
        self._prepare, self._abort = prepare, abort
        self.step_id = step_id
        self._records = list(records or [])

    def describe(self) -> str:
        return self.name

    def prepare(self) -> None:
        if self._prepare:
            self._prepare()

    def commit(self) -> None:
        self._do()

    def abort(self) -> None:
        if self._abort:
            self._abort()

    def undo(self) -> None:
        if self._undo is None:
            raise SatchelError("no undo defined")
        self._undo()

    def records(self) -> List[Dict[str, Any]]:
        return list(self._records)
