"""Reading a file set's pax archive safely, as a stream, with the standard library.

The archive is decompressed by the `zstd` tool into `tarfile`'s stream mode, so
memory stays flat whatever the size. Every member is checked before anything is
written where it matters: no absolute names, no `..`, no device nodes, fifos or
hard links, no symlink that leads out of the root. Owners are mapped by name
through the target root's own /etc/passwd and /etc/group, falling back to the
number with a warning.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from installer.errors import InputError, ToolError

ALLOWED = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE)


def _idmap(path: Path) -> Dict[str, int]:
    out: Dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            out.setdefault(fields[0], int(fields[2]))
    return out


class RecordOwner:
    """A manifest index record's owner, shaped like a tar member for Owners."""

    def __init__(self, rec: Dict[str, Any]) -> None:
        self.uname, self.gname = rec.get("user", ""), rec.get("group", "")
        self.uid, self.gid = int(rec.get("uid", 0)), int(rec.get("gid", 0))


class Owners:
    """Name -> number as the target root knows them; warnings for fallbacks."""

    def __init__(self, root: Path) -> None:
        self.users = _idmap(root / "etc/passwd")
        self.groups = _idmap(root / "etc/group")
        self.warnings: List[str] = []
        self._warned: set = set()

    def _map(self, table: Dict[str, int], kind: str, name: str, number: int) -> int:
        if name and name in table:
            return table[name]
        if name and (kind, name) not in self._warned:
            self._warned.add((kind, name))
            self.warnings.append(f"{kind} {name!r} does not exist on the target; "
                                 f"using its number {number}")
        return number

    def uid(self, m: Union[tarfile.TarInfo, RecordOwner]) -> int:
        return self._map(self.users, "user", m.uname, m.uid)

    def gid(self, m: Union[tarfile.TarInfo, RecordOwner]) -> int:
        return self._map(self.groups, "group", m.gname, m.gid)

    def same_as(self, other: Owners) -> bool:
        return (self.users, self.groups) == (other.users, other.groups)


def check_name(name: str) -> Optional[str]:
    """Why a member name is refused, or None."""
    if not name or name.startswith("/"):
        return "absolute path"
    if ".." in name.split("/"):
        return "contains '..'"
    if "\0" in name:
        return "contains a NUL byte"
    return None


def symlink_escapes(name: str, target: str) -> bool:
    """Would following this link (as seen inside the root) leave the root?"""
    if target.startswith("/"):
        return False  # absolute links are interpreted inside the root on the target
    depth = len(posixpath.dirname(name).split("/")) if posixpath.dirname(name) else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def check_member(m: tarfile.TarInfo) -> Optional[str]:
    why = check_name(m.name)
    if why:
        return why
    if m.type not in ALLOWED:
        kinds = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device",
                 tarfile.FIFOTYPE: "a fifo", tarfile.LNKTYPE: "a hard link"}
        return f"{kinds.get(m.type, 'an unsupported entry type')} is not allowed"
    if m.issym() and symlink_escapes(m.name, m.linkname):
        return f"symlink to {m.linkname!r} leads out of the root"
    return None


def xattrs(m: tarfile.TarInfo) -> Dict[str, bytes]:
    """Extended attributes (SELinux labels included) from libarchive's pax records."""
    out: Dict[str, bytes] = {}
    for key, value in m.pax_headers.items():
        if key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            out[name] = base64.b64decode(value + "=" * (-len(value) % 4))
        elif key.startswith("SCHILY.xattr.") and key[13:] not in out:
            out[key[13:]] = value.encode("utf-8", "surrogateescape")
    return out


ZSTD_HINT = "install the zstd package (it is in the distro's base repo)"


def zstd_tool(what: str) -> str:
    """The zstd tool, or an InputError saying it is needed to read `what`."""
    zstd = shutil.which("zstd")
    if zstd is None:
        raise InputError(f"the zstd tool is needed to read {what}", hint=ZSTD_HINT)
    return zstd


@contextmanager
def decompressed(path: Path, what: str) -> Iterator[IO[bytes]]:
    """`zstd -dc path` as a stream. When the reader is done, the rest of the stream
    is read (a reader may stop early: zstd must reach the frame's checksum), and a
    zstd that failed is a ToolError, even if the reader did not notice. When the
    reader fails, zstd is stopped and the reader's error is the one raised."""
    zstd = zstd_tool(what)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([zstd, "-dcq", str(path)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "LANG": "C.UTF-8"})
        assert proc.stdout is not None
        try:
            yield proc.stdout
        except BaseException:
            proc.kill()
            proc.stdout.close()
            proc.wait()
            raise
        while proc.stdout.read(1 << 20):
            pass
        proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            detail = err.read().decode("utf-8", "replace").strip()
            raise ToolError(f"zstd failed with exit code {rc} on {path.name}: {detail}",
                            hint="run `install verify` on the bundle")


@contextmanager
def open_stream(archive: Path) -> Iterator[tarfile.TarFile]:
    """A tarfile in stream mode over `zstd -dc` (or the plain file for .tar)."""
    if archive.suffix != ".zst":
        with tarfile.open(archive, mode="r|") as tf:
            yield tf
        return
    with decompressed(archive, "the file sets") as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tf:
        yield tf


def scan(archive: Path) -> List[Tuple[str, str]]:
    """Every refused member of an archive, as (name, why), without writing anything."""
    bad = []
    with open_stream(archive) as tf:
        for m in tf:
            why = check_member(m)
            if why:
                bad.append((m.name, why))
    return bad
