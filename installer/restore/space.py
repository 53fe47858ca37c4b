"""Disk space for an import's plan, per file system of the target, checked before any
change.

Each thing the import will write is added at the path it goes to (a host path
under the root); what it needs is summed per file system (the one holding the
path's nearest existing ancestor) and compared with what statvfs says is
available to unprivileged users there, plus a margin. A problem names the mount
point, what is needed and what is available; free inodes are checked the same
way where the file system counts them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple, Union

from installer.engine.paths import resolve_under

MiB = 1 << 20
MARGIN_MIN = 4 * MiB  # at least this much stays free on every file system written to
MARGIN_SHARE = 10  # and a tenth of what is written there
SYSTEM_MARGIN = 32 * MiB  # on the file system of the rpmdb: its growth, dnf's cache, logs


def existing_ancestor(path: Path) -> Path:
    """`path` itself if it exists, else its nearest existing ancestor."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding existing `path`."""
    path = Path(os.path.realpath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def human(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB // 10 else f"{n} bytes"


@dataclass
class _Use:
    where: Path  # an existing path on the file system
    bytes: int = 0
    inodes: int = 0
    extra: int = 0  # a fixed margin on top of the share


class SpaceNeeds:
    """What an import will write into `root`, summed per file system. Paths are
    target paths ("/usr/bin/x") or host paths under root; symlinks in them are
    followed inside the root, as on the target."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._uses: Dict[int, _Use] = {}
        self._devs: Dict[str, Tuple[int, Path]] = {}  # parent path -> (st_dev, where)

    def _use(self, path: Union[str, Path], directory: bool = False) -> _Use:
        text = os.fspath(path).rstrip("/") or "/"
        parent = text if directory else (os.path.dirname(text) or "/")
        if parent not in self._devs:
            where = existing_ancestor(resolve_under(self.root, parent))
            self._devs[parent] = (os.stat(where).st_dev, where)
        dev, where = self._devs[parent]
        if dev not in self._uses:
            self._uses[dev] = _Use(where)
        return self._uses[dev]

    def add(self, path: Union[str, Path], size: int, inodes: int = 1) -> None:
        """`size` bytes and `inodes` new entries written at `path`."""
        use = self._use(path)
        use.bytes += max(0, int(size))
        use.inodes += max(0, int(inodes))

    def reserve(self, directory: Union[str, Path], size: int) -> None:
        """A fixed margin on the file system of `directory` (the rpmdb's, say)."""
        use = self._use(directory, directory=True)
        use.extra = max(use.extra, size)

    def same_fs(self, a: Union[str, Path], b: Union[str, Path]) -> bool:
        """Are the files `a` and `b` (to be written) on the same file system?"""
        return self._use(a) is self._use(b)

    def problems(self) -> List[str]:
        """One line per file system that lacks the space (or inodes) needed."""
        out = []
        for use in self._uses.values():
            if not use.bytes and not use.inodes:
                continue
            vfs = os.statvfs(use.where)
            available = vfs.f_bavail * vfs.f_frsize
            margin = max(MARGIN_MIN, use.bytes // MARGIN_SHARE) + use.extra
            mount = mount_point(use.where)
            if use.bytes + margin > available:
                out.append(f"{mount}: the plan needs {human(use.bytes + margin)} "
                           f"({human(use.bytes)} to write, {human(margin)} margin), "
                           f"{human(available)} available")
            if vfs.f_files and use.inodes > vfs.f_favail:
                out.append(f"{mount}: the plan needs {use.inodes} inodes, "
                           f"{vfs.f_favail} available")
        return out
