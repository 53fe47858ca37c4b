"""The staging directory of a bundle, and hashing while writing.

Every file that goes into a bundle is written through `Staging`, which hashes the
bytes as they pass, so each byte is read once. Files written by external tools
(createrepo_c's repodata) are hashed once after the tool is done.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file of the bundle, as the manifest and SHA256SUMS describe it."""

    path: str  # relative to the bundle root, with '/' separators
    size: int
    sha256: str


class HashingWriter:
    """A write-only binary file that hashes what it writes; registers on close."""

    def __init__(self, staging: Staging, relpath: str, mode: int = 0o644) -> None:
        self._staging = staging
        self._relpath = relpath
        self._path = staging.root / relpath
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        os.chmod(self._path, mode)
        self._hash = hashlib.sha256()
        self._size = 0
        self.entry: Optional[Entry] = None

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    def close(self) -> Entry:
        if self.entry is None:
            self._file.close()
            self.entry = Entry(self._relpath, self._size, self._hash.hexdigest())
            self._staging.register(self.entry)
        return self.entry

    def discard(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


class Staging:
    """A bundle being built. `entries` is what SHA256SUMS and the manifest list."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> None:
        self.entries[entry.path] = entry

    def discard(self, relpath: str) -> None:
        """Forget `relpath` and remove its file (a step that failed after writing it)."""
        self.entries.pop(relpath, None)
        (self.root / relpath).unlink(missing_ok=True)

    def open(self, relpath: str, mode: int = 0o644) -> HashingWriter:
        return HashingWriter(self, relpath, mode)

    def copy_in(self, src: Path, relpath: str, mode: int = 0o644) -> Entry:
        """Stream `src` into the bundle, hashing on the way (one read)."""
        with open(src, "rb") as f, self.open(relpath, mode) as out:
            shutil.copyfileobj(f, out, CHUNK)
        assert out.entry is not None
        return out.entry

    def adopt(self, relpath: str) -> Entry:
        """Register a file an external tool wrote into the staging tree."""
        size, digest = hash_file(self.root / relpath)
        entry = Entry(relpath, size, digest)
        self.register(entry)
        return entry
