"""Media: the volume layout of a bundle, computed whole before any volume is written.

`--medium usb|dvd|dvd-dl|bd` and `--split-size SIZE` turn the staged bundle into
a set of volumes (installer/restore/volumes.py describes what a volume holds).
Every volume carries `install`, `manifest.json` and `SHA256SUMS` (the whole
set's), its own `volume.json`, then files in path order until it is full:

- a file over the medium's file limit is split into chunks of that size;
- a streamed file (`db/`, `files/`, `secrets/`: read as a stream on the target)
  that does not fit in what is left of a volume is split there, and continues
  on the next one;
- any other file (RPMs, repodata, hooks) moves whole to the next volume, so dnf
  reads every RPM in place; only one larger than a whole volume is split.

File limits: 4 GiB - 1 on a USB stick (FAT32), 4 GiB - 2 KiB in an ISO image
(one extent: no multi-extent file, so every ISO reader can read it, and a disc
can be copied onto a FAT32 stick). The size of a volume is estimated from the
file sizes: exact for directories (file bytes; leave room for the stick's own
file system), and for ISO images with a model of ISO 9660 + Rock Ridge + Joliet
overhead that errs on the large side (the written image is checked against it).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from installer.bundle import MANIFEST, SUMS
from installer.errors import InputError
from installer.restore.volumes import VOLUME_FORMAT, streamed

GiB = 1 << 30
FAT32_FILE_LIMIT = 4 * GiB - 1
ISO_FILE_LIMIT = 4 * GiB - 2048
BLOCK = 2048  # ISO 9660 logical block
MIN_PIECE = 64 << 10  # a streamed file is not split to fill less than this
MAX_VOLUMES = 999
SHARED = ("install", MANIFEST, SUMS)


class MediumName(enum.StrEnum):
    usb = "usb"
    dvd = "dvd"
    dvd_dl = "dvd-dl"
    bd = "bd"

    def capacity(self) -> Optional[int]:
        return {"usb": None, "dvd": 4_700_372_992, "dvd-dl": 8_543_666_176,
                "bd": 25_025_314_816}[self.value]

    def disc(self) -> bool:
        return self is not MediumName.usb


@dataclass(frozen=True)
class Medium:
    name: str  # a MediumName, or "split" (--split-size alone)
    capacity: Optional[int]  # bytes per volume; None: one volume, whatever its size
    file_limit: int  # the largest file (or chunk) on a volume
    iso: bool  # sized as an ISO 9660 image (a disc, or --format iso)


_SIZE = re.compile(r"^\s*(\d+)\s*(?:([KMGT])(i?B)?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`700M`, `4G`, `4GiB` (powers of 1024), `4GB` (powers of 1000) or bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (e.g. 700M, 4G or a number of bytes)")
    n, unit, suffix = int(m.group(1)), (m.group(2) or "").upper(), m.group(3) or ""
    base = 1000 if suffix.upper() == "B" else 1024
    size = n * base ** ("KMGT".index(unit) + 1) if unit else n
    if size <= 0:
        raise ValueError("a size must be more than 0 bytes")
    return size


def medium_for(name: Optional[str], split_size: Optional[int], iso: bool,
               archive: bool = False) -> Optional[Medium]:
    """The medium of `--medium` / `--split-size` (None: neither given)."""
    if name is None and split_size is None:
        return None
    if archive:
        raise InputError("--medium and --split-size write directories or ISO images",
                         hint="use --format dir or --format iso")
    kind = MediumName(name) if name else None
    capacity = kind.capacity() if kind else None
    if split_size is not None:
        if capacity is not None and split_size > capacity:
            raise InputError(f"--split-size {split_size} is larger than a {kind} "
                             f"({capacity} bytes)")
        capacity = split_size
    disc = iso or (kind is not None and kind.disc())
    return Medium(name=str(kind or "split"), capacity=capacity,
                  file_limit=ISO_FILE_LIMIT if disc else FAT32_FILE_LIMIT, iso=disc)


@dataclass(frozen=True)
class Piece:
    """A file of the bundle on a volume: whole (index 0) or one of its chunks."""

    path: str  # on the volume
    file: str  # in the bundle
    offset: int
    size: int
    index: int = 0
    count: int = 0


def _round(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _entry_json(entry: dict[str, Any]) -> int:
    return len(json.dumps(entry, sort_keys=True, separators=(",", ":"))) + 1


@dataclass
class VolumePlan:
    number: int
    medium: Medium
    pieces: list[Piece] = field(default_factory=list)
    data: int = 0  # file bytes, rounded to blocks on ISO
    records: int = 0  # ISO directory records and path tables
    listing: int = 0  # volume.json
    dirs: set[str] = field(default_factory=set)

    def _dir_cost(self, path: str) -> tuple[int, list[str]]:
        new = [str(p) for p in PurePosixPath(path).parents
               if str(p) != "." and str(p) not in self.dirs]
        # primary and Joliet extents (with room to grow by a block each), records
        return (len(new) * (4 * BLOCK + 512) if self.medium.iso else 0), new

    def _record(self, path: str) -> int:
        return 256 + 3 * len(PurePosixPath(path).name) if self.medium.iso else 0

    def _data(self, size: int) -> int:
        return _round(size) if self.medium.iso else size

    def total(self) -> int:
        base = 40 * BLOCK if self.medium.iso else 0  # system area, descriptors, root
        return base + self.data + self.records + self._data(self.listing)

    def cost_of(self, path: str, size: int, listing: int) -> int:
        """What the volume grows by with this file (or chunk) on it."""
        dir_cost, _ = self._dir_cost(path)
        grown = self._data(self.listing + listing) - self._data(self.listing)
        return self._data(size) + self._record(path) + dir_cost + grown

    def add(self, piece: Piece, listing: int) -> None:
        dir_cost, new = self._dir_cost(piece.path)
        self.dirs.update(new)
        self.records += self._record(piece.path) + dir_cost
        self.data += self._data(piece.size)
        self.listing += listing
        self.pieces.append(piece)


@dataclass(frozen=True)
class Layout:
    medium: Medium
    set_id: str  # sha256 of manifest.json
    layout_id: str  # sha256 of where every piece is: volumes of one build go together
    set_label: str
    volumes: tuple[VolumePlan, ...]
    sha256: dict[str, str]  # whole files' digests (the manifest's)

    def label(self, n: int) -> str:
        return f"{self.set_label}_{n}"

    def document(self, v: VolumePlan, chunk_sha: dict[str, str]) -> bytes:
        """volume.json of volume `v`; `chunk_sha` maps a chunk's path to its sha256."""
        return _document(self, v, chunk_sha)


def _header(set_id: str, layout_id: str, set_label: str, n: int, count: int, medium: Medium
            ) -> dict[str, Any]:
    return {"volume_format": VOLUME_FORMAT, "set": set_id, "layout": layout_id,
            "volume": n, "volumes": count,
            "label": f"{set_label}_{n}", "set_label": set_label,
            "medium": {"name": medium.name, "capacity": medium.capacity,
                       "file_limit": medium.file_limit}}


def _file_entry(p: Piece, sha: str) -> dict[str, Any]:
    return {"path": p.path, "size": p.size, "sha256": sha}


def _chunk_entry(p: Piece, sha: str) -> dict[str, Any]:
    return {"path": p.path, "file": p.file, "index": p.index, "count": p.count,
            "offset": p.offset, "size": p.size, "sha256": sha}


def _document(layout: Layout, v: VolumePlan, chunk_sha: dict[str, str]) -> bytes:
    doc = _header(layout.set_id, layout.layout_id, layout.set_label, v.number,
                  len(layout.volumes), layout.medium)
    doc["files"] = [_file_entry(p, layout.sha256[p.file]) for p in v.pieces
                    if not p.index and p.file not in (MANIFEST, SUMS)]
    doc["chunks"] = [_chunk_entry(p, chunk_sha[p.path]) for p in v.pieces if p.index]
    data = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert len(data) <= v.listing, (len(data), v.listing)  # the plan reserved this much
    return data


def set_label(label: str) -> str:
    """The recipe's label, short enough for `_999` within ISO's 32 characters."""
    return (label or "SATCHEL")[:32 - 4]


def plan(staging: Path, manifest: dict[str, Any], medium: Medium, label: str) -> Layout:
    """The whole layout of the staged bundle on `medium`; InputError when it cannot fit."""
    meta = (staging / MANIFEST).read_bytes()
    sizes = {f["path"]: int(f["size"]) for f in manifest["files"]}
    sha = {f["path"]: f["sha256"] for f in manifest["files"]}
    sizes[MANIFEST] = len(meta)
    sizes[SUMS] = (staging / SUMS).stat().st_size
    planner = _Planner(medium, set_label(label), sizes, sha)
    for rel in sorted(p for p in sizes if p not in SHARED):
        planner.place(rel, sizes[rel])
    where = [[v.number, [[p.path, p.file, p.offset, p.size] for p in v.pieces]]
             for v in planner.volumes]
    layout_id = hashlib.sha256(json.dumps([dataclasses.asdict(medium), where]).encode())
    return Layout(medium, hashlib.sha256(meta).hexdigest(), layout_id.hexdigest(),
                  set_label(label), tuple(planner.volumes), sha)


class _Planner:
    def __init__(self, medium: Medium, label: str, sizes: dict[str, int],
                 sha: dict[str, str]) -> None:
        self.medium, self.label, self.sizes, self.sha = medium, label, sizes, sha
        self.blank = self._blank(0)
        self._check(self.blank)
        self.volumes = [self._blank(1)]

    def _blank(self, number: int) -> VolumePlan:
        """A volume with what every volume carries."""
        v = VolumePlan(number, self.medium)
        v.listing = _entry_json(_header("0" * 64, "0" * 64, self.label, MAX_VOLUMES,
                                        MAX_VOLUMES, self.medium)) + 32
        for rel in SHARED:
            listing = _entry_json(_file_entry(Piece(rel, rel, 0, self.sizes[rel]),
                                              "0" * 64)) if rel == "install" else 0
            v.add(Piece(rel, rel, 0, self.sizes[rel]), listing)
        return v

    def _check(self, blank: VolumePlan) -> None:
        cap = self.medium.capacity
        if cap is not None and cap - blank.total() < MIN_PIECE + 1024:
            raise InputError(
                f"{self._what()} of {cap} bytes is too small: every volume "
                f"carries the installer, manifest.json, SHA256SUMS and its volume.json "
                f"({blank.total()} bytes"
                f"{' with the ISO 9660 overhead' if self.medium.iso else ''}) "
                f"and at least {MIN_PIECE} bytes of the bundle",
                hint=f"use --split-size {blank.total() + MIN_PIECE + 1024} or more, "
                     "or a larger medium")

    def _what(self) -> str:
        return "a volume" if self.medium.name == "split" else f"a {self.medium.name} volume"

    def _next(self) -> VolumePlan:
        if len(self.volumes) >= MAX_VOLUMES:
            raise InputError(f"the bundle would need more than {MAX_VOLUMES} volumes of "
                             f"{self.medium.capacity} bytes", hint="use a larger medium")
        v = self._blank(len(self.volumes) + 1)
        self.volumes.append(v)
        return v

    def _room(self, v: VolumePlan, path: str, listing: int) -> int:
        """The largest size of `path` that still fits on `v`."""
        if self.medium.capacity is None:
            return self.medium.file_limit
        free = self.medium.capacity - v.total() - v.cost_of(path, 0, listing)
        if self.medium.iso:
            free -= free % BLOCK
        return max(0, min(free, self.medium.file_limit))

    def place(self, rel: str, size: int) -> None:
        v = self.volumes[-1]
        whole = Piece(rel, rel, 0, size)
        listing = _entry_json(_file_entry(whole, self.sha[rel]))
        if size <= self._room(v, rel, listing):
            v.add(whole, listing)
        elif not streamed(rel) and size <= self._room(self.blank, rel, listing):
            self._next().add(whole, listing)
        else:
            self._split(rel, size)

    def _split(self, rel: str, size: int) -> None:
        # Chunk numbers of one width, so that name order is chunk order.
        width = len(str(MAX_VOLUMES + size // self.medium.file_limit))
        added: list[tuple[VolumePlan, int]] = []
        offset = 0
        while offset < size:
            v = self.volumes[-1]
            index = len(added) + 1
            name = f"{rel}.part{index:0{width}d}"
            bound = _entry_json(_chunk_entry(Piece(name, rel, size, size, index, 10 ** width),
                                             "0" * 64))
            room = self._room(v, name, bound)
            left = size - offset
            if room < min(left, MIN_PIECE) and len(v.pieces) > len(SHARED):
                self._next()
                continue
            if room <= 0:
                raise InputError(f"{rel}: no room for a chunk on an empty volume",
                                 hint="use a larger medium")
            take = min(left, room)
            v.add(Piece(name, rel, offset, take, index, 0), bound)
            added.append((v, len(v.pieces) - 1))
            offset += take
        for v, i in added:
            p = v.pieces[i]
            v.pieces[i] = Piece(p.path, p.file, p.offset, p.size, p.index, len(added))
