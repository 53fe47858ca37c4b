"""Resolving target paths under --root, refusing anything that escapes it, and
looking up users and groups in the target's own /etc/passwd and /etc/group."""

from __future__ import annotations

import grp
import os
import pathlib
import pwd
from typing import Optional, Union

from installer.errors import InputError

PathLike = Union[str, "os.PathLike[str]"]
_MAX_LINKS = 40


def resolve_under(root: pathlib.Path, path: PathLike, follow_last: bool = True) -> pathlib.Path:
    """The host path of target path `path` inside `root`.

    Symlinks are followed as if `root` were `/` (an absolute link target starts
    again at root). A `..` that would climb above root, through the path itself or
    through a symlink, is an InputError. `follow_last=False` leaves a final symlink
    unresolved (to replace the link itself). A host path already under root (as
    returned by a previous resolve) is accepted as is.
    """
    root = pathlib.Path(os.path.abspath(root))
    text = os.fspath(path)
    if not text:
        raise InputError("empty path")
    if str(root) != "/" and (text == str(root) or text.startswith(str(root) + "/")):
        text = "/" + text[len(str(root)):].lstrip("/")
    pending = [p for p in text.split("/") if p not in ("", ".")]
    pending.reverse()
    done: list = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if not done:
                raise InputError(f"path {text!r} escapes the root {root}")
            done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if (pending or follow_last) and candidate.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                raise InputError(f"too many levels of symbolic links in {text!r}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")]
            pending.extend(reversed(parts))
            continue
        done.append(part)
    return root.joinpath(*done)


def target_path(root: pathlib.Path, host: pathlib.Path) -> str:
    """The path as seen on the target ("/etc/x") for a host path under root."""
    rel = pathlib.Path(os.path.abspath(host)).relative_to(os.path.abspath(root))
    return "/" + rel.as_posix() if str(rel) != "." else "/"


def _lookup(root: pathlib.Path, file: str, name: str) -> Optional[int]:
    table = pathlib.Path(root, "etc", file)
    if str(root) == "/" or not table.is_file():
        return None
    for line in table.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2])
    return -2  # the target has a table, and no such name


def uid_of(root: pathlib.Path, owner: Union[str, int, None]) -> int:
    """A uid from a name or number, from the target's /etc/passwd if it has one;
    None -> -1 (leave unchanged)."""
    if owner is None:
        return -1
    if isinstance(owner, int):
        return owner
    found = _lookup(root, "passwd", owner)
    if found is not None and found >= 0:
        return found
    try:
        if found is None:
            return pwd.getpwnam(owner).pw_uid
    except KeyError:
        pass
    raise InputError(f"unknown user {owner!r} on the target")


def gid_of(root: pathlib.Path, group: Union[str, int, None]) -> int:
    """A gid from a name or number, as uid_of does for users."""
    if group is None:
        return -1
    if isinstance(group, int):
        return group
    found = _lookup(root, "group", group)
    if found is not None and found >= 0:
        return found
    try:
        if found is None:
            return grp.getgrnam(group).gr_gid
    except KeyError:
        pass
    raise InputError(f"unknown group {group!r} on the target")
