"""Publishing a staged bundle: as a directory, a .tar.zst, or an ISO image.

The staging tree is complete (manifest and SHA256SUMS last) before anything
appears at the output path. A directory is renamed into place; an archive is
written beside the output under a temporary name and renamed. A libarchive
warning is an error: the ISO writer's warnings are how it reports files it
would silently leave out.
"""

from __future__ import annotations

import enum
import os
import shutil
from pathlib import Path
from typing import Any

import libarchive
from libarchive import ffi
from libarchive.entry import ArchiveEntry, FileType

from bundler.archive import Sink
from bundler.progress import Progress
from installer.bundle import META_FILES, bundle_files
from installer.errors import SatchelError

BLOCK = 1 << 20


class OutputFormat(enum.StrEnum):
    dir = "dir"
    tar = "tar"
    iso = "iso"

    def extension(self) -> str:
        return {"dir": "", "tar": ".tar.zst", "iso": ".iso"}[self.value]


def _check(r: int, what: str) -> None:
    if r == ffi.ARCHIVE_WARN:
        raise SatchelError(f"libarchive warned while writing {what}; refusing a "
                           "possibly incomplete image",
                           hint="a file may be too large for the format")


def _write_archive(staging: Path, out: Path, fmt: str, filter_name: str | None,
                   options: str, prefix: str, sde: int, progress: Progress,
                   title: str) -> None:
    files = bundle_files(staging)
    dirs = sorted({str(Path(f).parent) for f in files if "/" in f}
                  | {str(p) for f in files for p in Path(f).parents if str(p) != "."})
    names = ([(d, True) for d in dirs] + [(f, False) for f in files])
    # The manifest and SHA256SUMS first, so a reader of the stream meets them early.
    names.sort(key=lambda x: (x[0] not in META_FILES, x[0]))
    with open(out, "wb") as fh, progress.step(f"writing {title}", total=len(names)) as p:
        sink = Sink(fh.write)
        with sink.guard(), libarchive.custom_writer(
                sink.write_cb, fmt, filter_name=filter_name, options=options,
                block_size=BLOCK) as archive:
            wp = archive._pointer
            for rel, is_dir in names:
                _add(wp, staging / rel, prefix + rel, is_dir, sde)
                p.advance(1, rel)
        fh.flush()
        os.fsync(fh.fileno())


def _add(wp: Any, src: Path, name: str, is_dir: bool, sde: int) -> None:
    st = src.stat()
    entry = ArchiveEntry(header_codec="utf-8", pathname=name,
                         filetype=FileType.DIRECTORY if is_dir else FileType.REGULAR_FILE,
                         perm=0o755 if is_dir else (st.st_mode & 0o7777),
                         size=0 if is_dir else st.st_size,
                         uid=0, gid=0, uname="root", gname="root", mtime=sde)
    _check(ffi.write_header(wp, entry._entry_p), name)
    if not is_dir:
        with open(src, "rb") as f:
            while chunk := f.read(BLOCK):
                _check(ffi.write_data(wp, chunk, len(chunk)), name)
    ffi.write_finish_entry(wp)


def publish(staging: Path, out: Path, fmt: OutputFormat, *, label: str, top: str,
            sde: int, progress: Progress, force: bool) -> Path:
    """Move the staged bundle to `out` in the given format; return the final path."""
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        if fmt is OutputFormat.dir:
            os.rename(staging, tmp)
        elif fmt is OutputFormat.tar:
            # zstd:threads uses both cores; frames do not depend on the thread count.
            _write_archive(staging, tmp, "pax_restricted", "zstd",
                           "zstd:compression-level=3,zstd:threads=0", f"{top}/", sde, progress,
                           out.name)
        else:
            opts = ("iso9660:rockridge=strict,iso9660:joliet,iso9660:iso-level=3,"
                    f"iso9660:volume-id={label},iso9660:!pad")
            _write_archive(staging, tmp, "iso9660", None, opts, "", sde, progress, out.name)
        _replace(tmp, out, force)
    except BaseException:
        _remove(tmp)
        raise
    finally:
        if fmt is not OutputFormat.dir:
            _remove(staging)
    return out


def _replace(tmp: Path, out: Path, force: bool) -> None:
    if out.exists() or out.is_symlink():
        if not force:
            raise SatchelError(f"{out} appeared during the build; not replacing it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        os.rename(tmp, out)
        _remove(old)
    else:
        os.rename(tmp, out)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

