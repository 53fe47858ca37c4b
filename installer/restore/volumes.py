"""Multi-volume bundles on the target: reading, collecting and verifying a set.

A bundle built for a medium (`build.py ... --medium` / `--split-size`) is a set
of volumes. Every volume is a bundle directory of its own (a mounted disc or
stick, or a directory) holding:

- `install`, `manifest.json` and `SHA256SUMS`: the whole set's, identical on
  every volume, so any volume can start the import and describe the bundle;
- `volume.json`: the set id (the sha256 of manifest.json), the layout id (the
  volumes of one build share it: the same bundle split another way is another
  set), this volume's number, the volume count, its label
  (`<set_label>_<number>`), and this volume's part of the manifest: the whole
  files it carries (path, size, sha256, as in SHA256SUMS) and its chunks
  (`<file>.partNNN`: the file, the index and count, offset, size and the
  chunk's own sha256);
- the files themselves, at their bundle paths.

A file is split into chunks when it is larger than the medium's file limit, or
(streamed files only: `db/`, `files/`, `secrets/`) when it does not fit in what
is left of a volume. The chunks are read in place, in order (volview.py).

Verification (`install verify`, the import's first step) hashes every file and
chunk of the volumes at hand against its volume.json, checks that volume.json
agrees with SHA256SUMS, and, when a chunked file's volumes are all present,
hashes the chunks once more as one stream against the whole file's sha256.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from installer.bundle import (
    CHUNK,
    MANIFEST,
    SUMS,
    VOLUME,
    Report,
    bundle_files,
    parse_manifest,
    parse_sums,
    sha256_file,
)
from installer.errors import InputError

VOLUME_FORMAT = 1
# Read as streams on the target (pg_restore, zstd, openssl): may be split anywhere.
STREAMED = ("db/", "files/", "secrets/")


def streamed(path: str) -> bool:
    return path.startswith(STREAMED)


@dataclass
class Volume:
    """One volume, as its volume.json describes it."""

    number: int
    count: int
    set_id: str  # the sha256 of the set's manifest.json
    layout_id: str  # where every file and chunk is: one build's volumes share it
    label: str
    labels: List[str]
    files: List[Dict[str, Any]]
    chunks: List[Dict[str, Any]]
    where: str  # the directory or image it was read from, for messages
    path: Optional[Path] = None  # the directory, when read from one

    @property
    def name(self) -> str:
        return f"volume {self.number} ({self.label})"


def parse_volume(data: bytes, where: str) -> Volume:
    try:
        doc = json.loads(data.decode("utf-8"))
        if doc.get("volume_format") != VOLUME_FORMAT:
            raise InputError(f"{where}: volume format {doc.get('volume_format')!r} is not "
                             f"supported (this installer reads {VOLUME_FORMAT})",
                             hint="use the installer that came with the bundle")
        count = int(doc["volumes"])
        vol = Volume(number=int(doc["volume"]), count=count,
                     set_id=str(doc["set"]), layout_id=str(doc["layout"]),
                     label=str(doc["label"]),
                     labels=[f"{doc['set_label']}_{n}" for n in range(1, count + 1)],
                     files=list(doc["files"]), chunks=list(doc["chunks"]), where=where)
        for f in vol.files:
            (str(f["path"]), int(f["size"]), str(f["sha256"]))
        for c in vol.chunks:
            (str(c["path"]), str(c["file"]), int(c["index"]), int(c["count"]),
             int(c["offset"]), int(c["size"]), str(c["sha256"]))
    except InputError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{where}: not a valid {VOLUME}: {e!r}") from None
    if not 1 <= vol.number <= vol.count or len(vol.labels) != vol.count:
        raise InputError(f"{where}: volume {vol.number} of {vol.count}: inconsistent {VOLUME}")
    for rel in ([f["path"] for f in vol.files] + [c["path"] for c in vol.chunks]
                + [c["file"] for c in vol.chunks]):
        if rel.startswith("/") or ".." in rel.split("/"):
            raise InputError(f"{where}: {VOLUME} names an unsafe path {rel!r}")
    return vol


def read_volume(path: Path) -> Optional[Volume]:
    """The volume at directory `path`, or None when it is a plain bundle."""
    try:
        data = (path / VOLUME).read_bytes()
    except FileNotFoundError:
        return None
    vol = parse_volume(data, str(path))
    vol.path = Path(os.path.abspath(path))
    return vol


def is_volume(path: Path) -> bool:
    return (path / VOLUME).is_file()


def names(numbers: Sequence[int], labels: Sequence[str]) -> str:
    return ", ".join(f"volume {n} ({labels[n - 1]})" for n in numbers)


# -- collecting the volumes of a set --------------------------------------------

Ask = Callable[[str], str]


def collect(first: Path, others: Sequence[Path] = (), ask: Optional[Ask] = None,
            say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> List[Volume]:
    """Every volume of the set `first` belongs to, from `others` (directories or
    mount points, in any order) and, when `ask` is given, from the answers to
    "insert volume N"; an InputError naming every volume still missing."""
    head = read_volume(first)
    if head is None:
        raise InputError(f"{first}: not a volume of a satchel set (no {VOLUME})")
    found: Dict[int, Volume] = {head.number: head}

    def add(path: Path, wanted: Optional[int] = None) -> Optional[str]:
        """Add the volume at `path`; a reason when it cannot be used."""
        try:
            vol = read_volume(path)
        except InputError as e:
            return e.message
        if vol is None:
            return f"{path}: not a volume of a satchel set (no {VOLUME})"
        if (vol.set_id, vol.layout_id) != (head.set_id, head.layout_id):
            return (f"{path}: {vol.name} belongs to another set "
                    f"(set {vol.set_id[:12]}/{vol.layout_id[:12]}, not "
                    f"{head.set_id[:12]}/{head.layout_id[:12]})")
        if wanted is not None and vol.number != wanted:
            return f"{path}: this is {vol.name}, not volume {wanted}"
        have = found.get(vol.number)
        if have is not None and have.path != vol.path:
            return f"{path}: {vol.name} was already given as {have.path}"
        found[vol.number] = vol
        return None

    for p in others:
        why = add(Path(p))
        if why:
            raise InputError(why)
    missing = [n for n in range(1, head.count + 1) if n not in found]
    while missing and ask is not None:
        n = missing[0]
        answer = ask(f"insert volume {n} of {head.count} (label {head.labels[n - 1]}) "
                     "and give its mount point (empty to stop): ").strip()
        if not answer:
            break
        why = add(Path(os.path.expanduser(answer)), wanted=n)
        if why:
            say(why)
        missing = [n for n in range(1, head.count + 1) if n not in found]
    if missing:
        raise InputError(f"the bundle is a set of {head.count} volumes; missing: "
                         f"{names(missing, head.labels)}",
                         hint="give each volume's directory or mount point with --volume DIR "
                              "(all at the same time), or run without --unattended to be "
                              "asked for them; nothing was changed")
    return [found[n] for n in sorted(found)]


# -- verification ---------------------------------------------------------------

@dataclass
class SetReport(Report):
    """A Report whose names carry the volume; `needed` lists volumes not at hand."""

    count: int = 0
    given: List[int] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)
    chunked_checked: int = 0

    @property
    def needed(self) -> List[int]:
        return [n for n in range(1, self.count + 1) if n not in self.given]


# (volume number, path on the volume) -> sha256 of what is there
Digests = Dict[Tuple[int, str], str]


@dataclass
class Meta:
    """What a volume's three meta files say, read from a directory or an image."""

    volume: Volume
    manifest: Optional[bytes]
    sums: Optional[bytes]
    present: List[str]  # every regular file on the volume, relative


def check_set(metas: Sequence[Meta], digests: Digests,
              whole: Dict[str, str]) -> SetReport:
    """Compare what was hashed with what the volumes and SHA256SUMS say.

    `whole` maps a chunked file to the sha256 of its chunks read in order (only
    for files whose every chunk was at hand)."""
    first = metas[0].volume
    rep = SetReport(count=first.count, labels=list(first.labels),
                    given=sorted(m.volume.number for m in metas))
    sums: Optional[Dict[str, str]] = None
    for m in metas:
        v = m.volume
        if (v.set_id, v.layout_id, v.count) != (first.set_id, first.layout_id, first.count):
            rep.problems.append(f"{v.where}: {v.name} belongs to another set")
            continue
        if m.manifest is None or m.sums is None:
            rep.missing += [f"{v.name}: {n}" for n, d in ((MANIFEST, m.manifest),
                                                          (SUMS, m.sums)) if d is None]
            continue
        if hashlib.sha256(m.manifest).hexdigest() != v.set_id:
            rep.altered.append(f"{v.name}: {MANIFEST} (not the set's)")
            continue
        try:
            manifest = parse_manifest(m.manifest, f"{v.where}/{MANIFEST}")
            these = parse_sums(m.sums)
        except InputError as e:
            rep.problems.append(f"{v.name}: {e.message}")
            continue
        if manifest.get("sha256sums") != hashlib.sha256(m.sums).hexdigest():
            rep.altered.append(f"{v.name}: {SUMS}")
            continue
        sums = sums or these
    if sums is None:
        rep.problems.append("no volume at hand has an intact manifest.json and SHA256SUMS")
        return rep
    placed: Dict[str, List[Tuple[int, int, int]]] = {}  # file -> [(offset, size, index)]
    listed_whole = set()
    for m in metas:
        v = m.volume
        listed = set()
        for f in v.files:
            rel = f["path"]
            listed.add(rel)
            listed_whole.add(rel)
            rep.checked += 1
            if sums.get(rel) != f["sha256"]:
                rep.problems.append(f"{v.name}: {VOLUME} lists {rel} with a sha256 that is "
                                    f"not the one in {SUMS}")
            got = digests.get((v.number, rel))
            if got is None:
                rep.missing.append(f"{v.name}: {rel}")
            elif got != f["sha256"]:
                rep.altered.append(f"{v.name}: {rel}")
        for c in v.chunks:
            rel = c["path"]
            listed.add(rel)
            rep.checked += 1
            if c["file"] not in sums:
                rep.problems.append(f"{v.name}: {rel} is a chunk of {c['file']}, which is not "
                                    f"in {SUMS}")
            got = digests.get((v.number, rel))
            if got is None:
                rep.missing.append(f"{v.name}: {rel}")
            elif got != c["sha256"]:
                rep.altered.append(f"{v.name}: {rel} (chunk {c['index']} of {c['count']} of "
                                   f"{c['file']})")
            placed.setdefault(c["file"], []).append((c["offset"], c["size"], c["index"]))
        rep.extra += [f"{v.name}: {p}" for p in m.present
                      if p not in listed and p not in (MANIFEST, SUMS, VOLUME)]
    for rel, digest in sorted(whole.items()):
        rep.chunked_checked += 1
        if sums.get(rel) != digest:
            rep.altered.append(f"{rel} (its chunks, read in order, do not make the file "
                               f"{SUMS} names)")
    if not rep.needed:
        sizes = _sizes(metas)
        for rel in sorted(sums):
            if rel in listed_whole:
                continue
            parts = sorted(placed.get(rel, []))
            if not parts:
                rep.missing.append(f"{rel}: on no volume of the set")
                continue
            offset = 0
            for off, size, _ in parts:
                if off != offset:
                    break
                offset += size
            if offset != sizes.get(rel, offset) or len({p[2] for p in parts}) != len(parts):
                rep.problems.append(f"{rel}: its chunks do not cover the file")
            elif rel not in whole:
                rep.problems.append(f"{rel}: its chunks were not checked as a whole")
    return rep


def _sizes(metas: Sequence[Meta]) -> Dict[str, int]:
    for m in metas:
        if m.manifest is not None:
            try:
                doc = json.loads(m.manifest.decode("utf-8"))
                return {f["path"]: int(f["size"]) for f in doc.get("files", [])}
            except (ValueError, KeyError, TypeError):
                continue
    return {}


def chains(vols: Sequence[Volume]) -> Dict[str, List[Tuple[Volume, Dict[str, Any]]]]:
    """Chunked files whose every chunk is on the volumes at hand, chunks in order."""
    by_file: Dict[str, List[Tuple[Volume, Dict[str, Any]]]] = {}
    for v in vols:
        for c in v.chunks:
            by_file.setdefault(c["file"], []).append((v, c))
    out = {}
    for rel, parts in by_file.items():
        parts.sort(key=lambda vc: vc[1]["index"])
        if [c["index"] for _, c in parts] == list(range(1, parts[0][1]["count"] + 1)):
            out[rel] = parts
    return out


def _hash_chain(parts: List[Tuple[Volume, Dict[str, Any]]]
                ) -> Tuple[List[Tuple[Tuple[int, str], Optional[str]]], Optional[str]]:
    """Each chunk's sha256 and the sha256 of all of them in order (None if unreadable)."""
    total = hashlib.sha256()
    each: List[Tuple[Tuple[int, str], Optional[str]]] = []
    complete = True
    for v, c in parts:
        assert v.path is not None
        h = hashlib.sha256()
        try:
            with open(v.path / c["path"], "rb") as f:
                while True:
                    block = f.read(CHUNK)
                    if not block:
                        break
                    h.update(block)
                    total.update(block)
        except (FileNotFoundError, IsADirectoryError):
            complete = False
            continue
        each.append(((v.number, c["path"]), h.hexdigest()))
    return each, (total.hexdigest() if complete else None)


def read_meta(v: Volume) -> Meta:
    root = v.path
    assert root is not None
    present = bundle_files(root)

    def get(name: str) -> Optional[bytes]:
        return (root / name).read_bytes() if name in present else None

    return Meta(v, get(MANIFEST), get(SUMS), present)


def verify_volumes(vols: Sequence[Volume], workers: Optional[int] = None) -> SetReport:
    """Hash every file and chunk of the volume directories at hand; check them."""
    metas = [read_meta(v) for v in vols]
    linked = chains(vols)
    in_chain = {(v.number, c["path"]) for parts in linked.values() for v, c in parts}
    singles: List[Tuple[Volume, str]] = []
    for m in metas:
        v = m.volume
        for rel in m.present:
            if rel not in (MANIFEST, SUMS, VOLUME) and (v.number, rel) not in in_chain:
                singles.append((v, rel))
    digests: Digests = {}
    whole: Dict[str, str] = {}

    def one(item: Tuple[Volume, str]) -> Tuple[Tuple[int, str], str]:
        v, rel = item
        assert v.path is not None
        return (v.number, rel), sha256_file(v.path / rel)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        chain_jobs = {rel: pool.submit(_hash_chain, parts) for rel, parts in linked.items()}
        for key, digest in pool.map(one, singles):
            digests[key] = digest
        for rel, job in chain_jobs.items():
            each, total = job.result()
            digests.update({k: d for k, d in each if d is not None})
            if total is not None:
                whole[rel] = total
    rep = check_set(metas, digests, whole)
    rep.bytes = sum(os.path.getsize(os.path.join(str(m.volume.path), rel)) for m in metas
                    for rel in m.present)
    return rep


def print_report(rep: SetReport, out: Any = None, err: Any = None) -> int:
    """What `install verify` prints for a volume or a set; its exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    if not rep.ok:
        for line in rep.lines():
            err.write(f"FAILED: {line}\n")
        return 1
    given = names(rep.given, rep.labels)
    out.write(f"OK: {given}: {rep.checked} files and chunks verified"
              + (f", {rep.chunked_checked} chunked file(s) checked whole"
                 if rep.chunked_checked else "") + "\n")
    if rep.needed:
        out.write(f"the set has {rep.count} volumes; still needed: "
                  f"{names(rep.needed, rep.labels)}\n")
    else:
        out.write(f"the set of {rep.count} volume(s) is complete\n")
    return 0
