"""A snapshot of a directory tree for before/after comparisons in tests: every
path with its type and content (or link target), mode, uid and gid. Each caller
says which paths it leaves out (logs, the rpmdb's files, the engine's own state)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

Snapshot = Dict[str, Tuple[Any, ...]]


def tree(root: Path, skip: Callable[[str], bool] = lambda rel: False) -> Snapshot:
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if skip(rel):
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                body: Any = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                body = ("file", path.read_bytes())
            else:
                body = ("dir",)
            out[rel] = (body, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out
