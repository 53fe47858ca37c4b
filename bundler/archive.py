"""Pax archives of file trees, written with libarchive and hashed on the way.

A file set becomes one pax tar (zstd-compressed): entries sorted, mtimes clamped
to the source date, atime/ctime dropped, owners kept by name and number, modes and
xattrs (SELinux labels included) kept. Each file's bytes are read once: we feed
libarchive ourselves and hash the content as it passes, so the manifest can list
every file's sha256 for the import's plan and audit.
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import libarchive
from libarchive import ffi
from libarchive.entry import ArchiveEntry

from bundler.owners import OwnerNames
from bundler.recipe import Override
from installer.errors import InputError

BLOCK = 1 << 16
# zstd compresses in worker threads (libarchive 3.6+), beside our reading and hashing
# and off the GIL. Its output is the same for any number of workers from 1 up (only
# the single-threaded mode, without the option, differs), so the same libarchive and
# zstd give the same bytes on any machine; the cap bounds the workers' buffers.
ZSTD_THREADS = min(os.cpu_count() or 1, 4)


@dataclass(frozen=True)
class Member:
    """One entry of a tree to archive: its path inside the set and on disk."""

    rel: str
    source: Path


@dataclass
class Walk:
    members: list[Member]
    problems: list[str]  # unreadable files and other trouble, all at once
    skipped: list[str]  # sockets and fifos, which cannot be carried


def walk(root: Path, paths: Sequence[str], exclude: Sequence[str],
         skip: frozenset[str] = frozenset()) -> Walk:
    """List the members of a file set in sorted order, checking each is readable.
    `skip` holds exact paths to leave out (their directories are still walked)."""
    result = Walk([], [], [])
    seen: set[str] = set()

    def excluded(rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p)
                   for p in exclude)

    def visit(rel: str) -> None:
        if rel in seen or excluded(rel):
            return
        seen.add(rel)
        src = root / rel
        try:
            st = os.lstat(src)
        except FileNotFoundError:
            result.problems.append(f"{src}: does not exist")
            return
        except OSError as e:
            result.problems.append(f"{src}: {e.strerror}")
            return
        if stat.S_ISSOCK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            result.skipped.append(rel)
            return
        if stat.S_ISREG(st.st_mode) and not os.access(src, os.R_OK):
            result.problems.append(f"{src}: not readable")
            return
        if rel not in skip or stat.S_ISDIR(st.st_mode):
            result.members.append(Member(rel, src))
        if stat.S_ISDIR(st.st_mode):
            try:
                names = sorted(os.listdir(src))
            except OSError as e:
                result.problems.append(f"{src}: cannot list: {e.strerror}")
                return
            for n in names:
                visit(f"{rel}/{n}")

    for p in paths:
        visit(p.strip("/"))
    result.members.sort(key=lambda m: m.rel)
    return result


def _name_owners(entry: ArchiveEntry, names: OwnerNames) -> None:
    """Owner names as the source root gives them (never the build host's)."""
    user, group = names.user(entry.uid), names.group(entry.gid)
    if user is not None:
        entry.uname = user
    if group is not None:
        entry.gname = group


def _apply_overrides(entry: ArchiveEntry, rel: str, overrides: Sequence[Override],
                     names: OwnerNames) -> None:
    for o in overrides:
        if not fnmatch.fnmatchcase(rel, o.match):
            continue
        if o.owner is not None:
            entry.uname = o.owner
            uid = names.uid(o.owner)
            if uid is not None:
                entry.uid = uid
        if o.group is not None:
            entry.gname = o.group
            gid = names.gid(o.group)
            if gid is not None:
                entry.gid = gid
        if o.mode is not None:
            entry.perm = o.mode


# The index's "type" of each file type; anything else is "other".
_KINDS = {stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFREG: "file"}


def _index_record(entry: ArchiveEntry, kind: str, mtime: int,
                  digest: Optional[str]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": kind,
        "mode": f"{entry.perm:04o}",
        "uid": entry.uid, "gid": entry.gid,
        "user": entry.uname or "", "group": entry.gname or "",
        "mtime": mtime,
    }
    if kind == "file":
        rec["size"] = entry.size
        rec["sha256"] = digest
    elif kind == "symlink":
        rec["target"] = entry.linkpath
    return rec


def write_tree(
    out: Callable[[bytes], Any],
    members: Sequence[Member],
    *,
    source_date_epoch: int,
    overrides: Sequence[Override] = (),
    compress: bool = True,
    max_mode: Optional[int] = None,
    advance: Callable[[int, str], None] = lambda n, item: None,
    names: Optional[OwnerNames] = None,
) -> dict[str, dict[str, Any]]:
    """Write members as a pax tar (zstd) to `out`; return the per-path index.
    Owner names come from `names` (the source root's; default: the host's)."""
    index: dict[str, dict[str, Any]] = {}
    names = names if names is not None else OwnerNames()
    sink = Sink(out)
    filter_name = "zstd" if compress else None
    options = _zstd_options() if compress else ""
    with sink.guard(), _disk_reader() as read_p, libarchive.custom_writer(
            sink.write_cb, "pax_restricted", filter_name=filter_name, options=options,
            block_size=BLOCK) as archive:
        write_p = archive._pointer
        for m in members:
            _write_member(write_p, read_p, m, source_date_epoch, overrides, max_mode, index,
                          names)
            advance(1, m.rel)
    return index


def _zstd_options() -> str:
    options = "zstd:compression-level=3"
    if ffi.version_number() >= 3006000:  # zstd:threads came with libarchive 3.6
        options += f",zstd:threads={ZSTD_THREADS}"
    return options


# libarchive's own metadata reader, the one its directory walker calls for each
# file: lstat, symlink target, ACLs, xattrs (SELinux labels), file flags, sparse
# map. One reader serves a whole tree (a walker opened per file cost ~15 us CPU each).
_entry_from_file = ctypes.CFUNCTYPE(
    ctypes.c_int, ffi.c_archive_p, ffi.c_archive_entry_p, ctypes.c_int, ctypes.c_void_p)(
    ("archive_read_disk_entry_from_file", ffi.libarchive))
_entry_from_file.errcheck = ffi.check_int
_copy_sourcepath = ctypes.CFUNCTYPE(None, ffi.c_archive_entry_p, ctypes.c_char_p)(
    ("archive_entry_copy_sourcepath", ffi.libarchive))


@contextlib.contextmanager
def _disk_reader() -> Iterator[Any]:
    """A disk reader without user/group name lookup (names come from OwnerNames)."""
    read_p = ffi.read_disk_new()
    try:
        ffi.read_disk_set_behavior(read_p, 0)
        yield read_p
    finally:
        ffi.read_free(read_p)


def _read_metadata(read_p: Any, entry: ArchiveEntry, source: Path) -> None:
    _copy_sourcepath(entry._entry_p, os.fsencode(source))
    try:
        _entry_from_file(read_p, entry._entry_p, -1, None)
    except libarchive.ArchiveError as e:
        if not os.path.lexists(source):
            raise InputError(f"{source}: vanished while it was being archived") from None
        raise InputError(f"{source}: cannot read its metadata: {e.msg}") from None


class Sink:
    """libarchive's write callback, made safe: an exception raised while writing
    (a full disk) must not cross the C boundary. It is kept, libarchive is told
    the write failed, and `guard()` re-raises the original exception."""

    def __init__(self, out: Callable[[bytes], Any]) -> None:
        self.out = out
        self.error: Optional[BaseException] = None

    def write_cb(self, data: bytes) -> int:
        if self.error is not None:
            return -1
        try:
            self.out(bytes(data))
        except BaseException as e:
            self.error = e
            return -1
        return len(data)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            if self.error is not None:
                raise self.error from None
            raise
        if self.error is not None:
            raise self.error


def _write_member(write_p: Any, read_p: Any, m: Member, sde: int,
                  overrides: Sequence[Override], max_mode: Optional[int],
                  index: dict[str, dict[str, Any]], names: OwnerNames) -> Optional[str]:
    entry = ArchiveEntry(header_codec="utf-8")
    _read_metadata(read_p, entry, m.source)
    kind = _KINDS.get(entry.filetype & 0o170000, "other")  # overrides keep the type
    entry.pathname = m.rel
    mtime = min(int(entry.mtime or 0), sde)
    entry.mtime = mtime
    entry.atime = None
    entry.ctime = None
    entry.birthtime = None
    _name_owners(entry, names)
    _apply_overrides(entry, m.rel, overrides, names)
    if max_mode is not None and kind == "file":
        entry.perm = entry.perm & max_mode
    digest: Optional[str] = None
    if kind == "file":
        digest = _write_regular(write_p, entry, m.source)
    else:
        if kind != "other":  # a directory or a symlink carries no data
            entry.size = 0
        ffi.write_header(write_p, entry._entry_p)
        ffi.write_finish_entry(write_p)
    index[m.rel] = _index_record(entry, kind, mtime, digest)
    return digest


def _write_regular(write_p: Any, entry: ArchiveEntry, source: Path) -> str:
    h = hashlib.sha256()
    expected = entry.size
    with open(source, "rb") as f:
        ffi.write_header(write_p, entry._entry_p)
        written = 0
        while chunk := f.read(BLOCK):
            if written + len(chunk) > expected:
                raise InputError(f"{source}: changed while it was being archived "
                                 "(it grew)", hint="stop what writes it and run again")
            h.update(chunk)
            ffi.write_data(write_p, chunk, len(chunk))
            written += len(chunk)
        if written != expected:
            raise InputError(f"{source}: changed while it was being archived "
                             "(it shrank)", hint="stop what writes it and run again")
    ffi.write_finish_entry(write_p)
    return h.hexdigest()


def read_entries(path: Path) -> Iterator[Any]:
    """Iterate the entries of an archive file (tar, tar.zst, ISO) without extracting."""
    with libarchive.file_reader(str(path)) as archive:
        yield from archive
