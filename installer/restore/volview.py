"""A read-only view of a multi-volume set as one bundle directory, on the target.

The volumes are read in place; nothing is copied back onto a medium. The view is
a private temporary directory (0700) that the import runs from as if it were the
bundle:

- a whole file is a symlink to its volume, so `repo/` is one repository whose
  RPMs live on several volumes and dnf reads each one where it is (the
  repodata, built once for the whole set, names them relative to `repo/`);
  but a file-set archive (`files/`, `secrets/`) is a pipe even when whole, as
  below, because zstd ignores a symlink given as its input;
- a chunked streamed file (`db/`, `files/`, `secrets/`) is a named pipe: a
  thread writes its chunks into it in order, straight from the volumes, each
  time a reader opens it (pg_restore, zstd, openssl read it as one file; a
  pipe cannot be read by parallel jobs, so pg_restore runs with one);
- a chunked file that must be seekable (an RPM over the medium's file limit) is
  joined into the view, that is onto the target's temporary directory; this is
  the one copy, and only such files need it;
- `.volumes/<N>` links to each volume, so the import's verification finds them.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from installer.bundle import CHUNK, MANIFEST, SUMS
from installer.restore.volumes import Volume, chains, read_volume, streamed

log = logging.getLogger("satchel")

VOLUMES_DIR = ".volumes"
# zstd skips a symlink ("is a symbolic link, ignoring"): file-set archives are
# served through a pipe even when they are whole.
PIPED = ("files/", "secrets/")
POLL = 0.05  # seconds between looks for a reader of a pipe


class _Pipe:
    """A named pipe that serves the concatenation of `parts` to every reader.

    As soon as a reader has it open, a fresh pipe is renamed over the path, so
    the next reader (pg_restore opens its file twice) gets its own stream, never
    the tail of another's."""

    def __init__(self, path: Path, parts: Sequence[Path]) -> None:
        self.path = path
        self.parts = list(parts)
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        os.mkfifo(path, 0o600)
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"volume pipe {path.name}")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno == errno.ENXIO:  # no reader yet
                    self._stop.wait(POLL)
                    continue
                if not self._stop.is_set():
                    self.error = e
                    log.error("serving %s from its volumes: %s", self.path.name, e)
                return
            try:
                fresh = self.path.with_name(f".{self.path.name}.next")
                os.mkfifo(fresh, 0o600)
                os.replace(fresh, self.path)
                os.set_blocking(fd, True)
                self._feed(fd)
            except BrokenPipeError:
                pass  # the reader stopped before the end: its business
            except OSError as e:  # a volume went away: the reader sees a short file
                self.error = e
                log.error("serving %s from its volumes: %s", self.path.name, e)
            finally:
                os.close(fd)

    def _feed(self, fd: int) -> None:
        for part in self.parts:
            with open(part, "rb") as f:
                while not self._stop.is_set():
                    block = f.read(CHUNK)
                    if not block:
                        break
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class View:
    """The set `vols` (every volume, verified or not yet) as one bundle directory."""

    def __init__(self, vols: Sequence[Volume], parent: Optional[str] = None) -> None:
        self.volumes = sorted(vols, key=lambda v: v.number)
        self.path = Path(tempfile.mkdtemp(prefix="satchel-volumes-", dir=parent))
        self._pipes: List[_Pipe] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _place(self, rel: str) -> Path:
        dest = self.path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def _build(self) -> None:
        first = self.volumes[0]
        assert first.path is not None
        for name in (MANIFEST, SUMS):
            os.symlink(first.path / name, self._place(name))
        for v in self.volumes:
            assert v.path is not None
            os.symlink(v.path, self._place(f"{VOLUMES_DIR}/{v.number}"))
            for entry in v.files:
                dest = self._place(entry["path"])
                if os.path.lexists(dest):
                    continue
                if entry["path"].startswith(PIPED):
                    self._pipes.append(_Pipe(dest, [v.path / entry["path"]]))
                else:
                    os.symlink(v.path / entry["path"], dest)
        for rel, parts in sorted(chains(self.volumes).items()):
            paths = [v.path / c["path"] for v, c in parts if v.path is not None]
            if streamed(rel):
                self._pipes.append(_Pipe(self._place(rel), paths))
            else:
                log.info("joining %s from %d chunks into %s", rel, len(paths), self.path)
                with open(self._place(rel), "wb") as out:
                    for p in paths:
                        with open(p, "rb") as f:
                            shutil.copyfileobj(f, out, CHUNK)

    def close(self) -> None:
        for p in self._pipes:
            p.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def volumes_of(bundle: Path) -> Optional[List[Volume]]:
    """The volumes behind a view (None when `bundle` is a plain bundle directory)."""
    d = bundle / VOLUMES_DIR
    if not d.is_dir():
        return None
    found: List[Tuple[int, Volume]] = []
    for link in d.iterdir():
        vol = read_volume(Path(os.readlink(link)))
        if vol is not None:
            found.append((vol.number, vol))
    return [v for _, v in sorted(found, key=lambda nv: nv[0])]


def describe(vols: Sequence[Volume]) -> Dict[str, str]:
    """Volume number -> where it was read from (for the log)."""
    return {str(v.number): str(v.path) for v in vols}
