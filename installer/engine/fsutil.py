"""Low-level file helpers: atomic writes, directory fsync, syncfs, backups, SELinux labels."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
from typing import List, Optional

from installer.bundle import sha256_file as sha256_file  # one implementation, re-exported
from installer.errors import InputError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def missing_dirs(path: pathlib.Path) -> List[pathlib.Path]:
    """The directories to create for `path` to exist: from the first missing
    ancestor down to `path` itself (empty when it exists). An existing ancestor
    that is not a directory is an InputError."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    if not path.is_dir():
        raise InputError(f"{path} exists and is not a directory")
    return list(reversed(missing))


def fsync_dir(path: pathlib.Path) -> None:
    """fsync a directory so a rename or unlink in it is durable."""
    fd = os.open(str(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc: Optional[ctypes.CDLL] = None


def syncfs(path: pathlib.Path) -> None:
    """Make everything written so far to the file system holding `path` durable
    (data, inodes and directory entries of every file on it): one syncfs(2) instead
    of an fsync per file, for callers that write many files and then need them all
    on disk at once. Falls back to os.sync() (every file system) where libc has no
    syncfs. A write-back error the kernel reports (EIO, ENOSPC...) is an OSError."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        call = _libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(str(path), os.O_RDONLY)
    try:
        if call(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)


def write_temp(directory: pathlib.Path, data: bytes, mode: int,
               uid: int = -1, gid: int = -1, prefix: str = ".satchel-") -> pathlib.Path:
    """Write `data` to a new temp file in `directory` (fsynced, mode and owner set)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=str(directory))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if uid != -1 or gid != -1:
                os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)  # after chown: chown clears setuid bits
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return pathlib.Path(name)


def atomic_write(path: pathlib.Path, data: bytes, mode: int = 0o644,
                 uid: int = -1, gid: int = -1) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory."""
    tmp = write_temp(path.parent, data, mode, uid, gid)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def copy_file_meta(src: pathlib.Path, dest: pathlib.Path) -> None:
    """Copy a regular file with content, mode, owner and times, not synced: the
    caller makes it durable (backup_copy fsyncs it; many copies: one syncfs)."""
    st = os.lstat(src)
    shutil.copyfile(src, dest, follow_symlinks=False)
    os.chown(dest, st.st_uid, st.st_gid)
    os.chmod(dest, stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


def backup_copy(src: pathlib.Path, dest: pathlib.Path) -> None:
    """Copy a regular file with content, mode, owner and times (for undo)."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    copy_file_meta(src, dest)
    with open(dest, "rb") as f:
        os.fsync(f.fileno())


def restore_copy(backup: pathlib.Path, path: pathlib.Path) -> None:
    """Put a backup back at `path` atomically, byte for byte with mode, owner, mtime."""
    st = os.lstat(backup)
    tmp = write_temp(path.parent, backup.read_bytes(), stat.S_IMODE(st.st_mode),
                     st.st_uid, st.st_gid)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def selinux_enabled() -> bool:
    """True if the running system has SELinux enabled."""
    if not os.path.exists("/sys/fs/selinux/enforce"):
        return False
    tool = shutil.which("selinuxenabled")
    if tool is None:
        return True
    return subprocess.run([tool], stdin=subprocess.DEVNULL, check=False).returncode == 0


def restorecon(path: pathlib.Path, root: pathlib.Path) -> Optional[str]:
    """Restore the SELinux label of `path` when SELinux is enabled and we install
    into the running system (labels of another root come from its own policy at
    relabel time). Returns the command run, or None."""
    if str(root) != "/" or not selinux_enabled():
        return None
    tool = shutil.which("restorecon")
    if tool is None:
        return None
    from installer.engine.process import run

    run([tool, "-F", str(path)])
    return f"restorecon -F {path}"
