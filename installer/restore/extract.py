"""Restoring a file set onto the root, as one transaction element.

prepare() streams the archive once: every member is checked (see tarstream) and
each regular file whose content, mode or owner differs from the target is
written to a staging area under <root>/var/lib/satchel/staging, with its sha256
checked against the manifest's index as it is written. Nothing the target uses
has changed yet, so a bad member or a corrupted archive stops the run here.

commit() backs up every file it will replace (under the state directory), then
moves staged entries into place in path order (parents first); then the mtimes of
the set's directories above what changed are set to the archive's. undo() puts
every replaced file back byte for byte and removes what was created.

Durability, without an fsync per file: staged files are written unsynced and
prepare() ends with one syncfs(2) of the staging file system, so no entry is
renamed into place before its content is on disk (after a crash, the journal's
entry names files whose content came from the staging area). The backups are
made unsynced too, then one syncfs of the backup file system before the first
original is replaced. commit() renames without syncing and, before it returns
(the transaction then marks the step done in the journal, and a later run skips
it), fsyncs once each directory it changed an entry of (created directories
included), deepest first, and syncs the file system of any file that had to be
copied in from a staging area on another file system. A crash before that leaves
the step started: the next run checks every entry against the archive again and
redoes what is not in place.

Resuming: before moving anything, commit() writes the records of every change it
is about to make to the journal (`Journal.begin`). A run killed in the middle of
the commit leaves that entry; the next run's element finds what the first
attempt already moved in "already identical", and takes its records from the
entry, so the state registry ends up as after an uninterrupted run. The first
attempt's changes are not undone by a later rollback (their backups belong to
the killed run, under its own backup directory).

Prepared ahead: the import stages a set while dnf installs the packages
(`transaction.prepare_ahead`), so the target may change between prepare() and
commit(): a package installs a file of the set, a scriptlet adds the user that
owns some of it. prepare() therefore notes each entry's lstat (absent, or
device, inode, type and mode, owner, size, mtime and ctime) and the owner
mapping it used; commit() first compares them with the target as it is now and
classifies again each entry that changed (and every entry when /etc/passwd or
/etc/group map a name differently): a staged file that is now identical is
dropped, a staged file is re-owned, a file created by a package is backed up and
replaced like any other. Only when a file that prepare found identical now
differs, so nothing was staged for it, is the whole set staged again.

The archive is read through `opener` (default: tarstream.open_stream), so an
encrypted one can be decrypted on the fly (see installer.restore.secrets).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional, Set, Tuple

from installer.engine import fsutil
from installer.engine.transaction import TransactionElement
from installer.errors import InputError
from installer.restore import checkpoint
from installer.restore.tarstream import Owners, RecordOwner, check_member, open_stream, xattrs

CHUNK = 1 << 20
Opener = Callable[[Path], ContextManager[tarfile.TarFile]]
Fingerprint = Optional[Tuple[int, ...]]

log = logging.getLogger("satchel.files")


@dataclass
class Change:
    rel: str
    kind: str  # dir | file | symlink
    how: str  # create | replace | meta
    staged: Optional[Path] = None
    link: str = ""
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    sha256: str = ""
    backup: Optional[Path] = None
    old_meta: Optional[Tuple[int, int, int]] = None
    applied: bool = False


def fingerprint(host: Path) -> Fingerprint:
    """What tells whether a path changed: None when absent, else its lstat's
    device, inode, mode, owner, size, mtime and ctime."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns)


def _kind(rec: Dict[str, Any]) -> str:
    return "dir" if rec["type"] == "dir" else "symlink" if rec["type"] == "symlink" else "file"


def _same_meta(st: os.stat_result, mode: int, uid: int, gid: int) -> bool:
    return (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid)


class HostPaths:
    """Host paths of a set's entries: the parents resolved inside the root as the
    target would see them (a symlink among them, absolute or relative, is followed
    from the root: never out of it; a `..` above the root is an InputError), the
    last component not followed. One resolution per parent directory."""

    def __init__(self, resolve: Callable[..., Path], root: Path) -> None:
        self._resolve = resolve
        self._root = root
        self._parents: Dict[str, Path] = {}

    def __call__(self, rel: str) -> Path:
        parent, _, name = rel.rpartition("/")
        base = self._parents.get(parent)
        if base is None:
            base = self._resolve("/" + parent) if parent else self._root
            self._parents[parent] = base
        return base / name


def classify(host: Path, rec: Dict[str, Any], uid: int, gid: int) -> str:
    """create | replace | meta | identical, for one index record against its host
    path (see HostPaths)."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return "create"
    mode = int(rec["mode"], 8)
    kind = rec["type"]
    if kind == "dir":
        if not stat.S_ISDIR(st.st_mode):
            return "replace"
        return "identical" if _same_meta(st, mode, uid, gid) else "meta"
    if kind == "symlink":
        if stat.S_ISLNK(st.st_mode) and os.readlink(host) == rec.get("target"):
            return "identical"
        return "replace"
    if not stat.S_ISREG(st.st_mode) or st.st_size != rec.get("size"):
        return "replace"
    if fsutil.sha256_file(host) != rec.get("sha256"):
        return "replace"
    return "identical" if _same_meta(st, mode, uid, gid) else "meta"


class ExtractSet(TransactionElement):
    """Restore one file set (`files/<name>.tar.zst`) described by its manifest entry."""

    def __init__(self, bundle: Path, fileset: Dict[str, Any], archive_key: str = "archive",
                 step_id: Optional[str] = None, opener: Optional[Opener] = None) -> None:
        self.bundle = bundle
        self.fileset = fileset
        self.archive = bundle / fileset[archive_key]
        self.index: Dict[str, Dict[str, Any]] = fileset["index"]
        self.step_id = step_id
        self.opener: Opener = opener or open_stream
        self.changes: List[Change] = []
        # prepare: each entry's fingerprint and (uid, gid) when classified
        self.seen: Dict[str, Tuple[Fingerprint, int, int]] = {}
        self.owners: Optional[Owners] = None
        self.parents: List[Change] = []  # missing parents above the set's paths
        self.identical = 0
        self.warnings: List[str] = []
        self.earlier: List[Dict[str, Any]] = []  # records of an interrupted attempt
        self._begun = False
        self._dirs_known: Set[Path] = set()  # commit: directories seen to exist
        self._dirs_changed: Set[Path] = set()  # commit: entries changed, fsynced at the end
        self._copied_in: Dict[int, Path] = {}  # commit: st_dev -> a file copied in there

    def describe(self) -> str:
        return f"restore file set {self.fileset.get('name', self.archive.name)}"

    # -- prepare: stream, check, stage -------------------------------------

    def bind(self, txn: Any) -> None:
        super().bind(txn)
        self.host = HostPaths(txn.resolve, txn.root)

    def prepare(self) -> None:
        root = self.txn.root
        owners = self.owners = Owners(root)
        self.changes, self.seen, self.identical = [], {}, 0
        started = self.txn.journal.started(self.step_id) if self.step_id else None
        self.earlier = list(started.get("records", [])) if isinstance(started, dict) else []
        self.staging = root / "var/lib/satchel/staging" / self.archive.name
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, mode=0o700)
        refused: List[str] = []
        seen = set()
        with self.opener(self.archive) as tf:
            for m in tf:
                why = check_member(m)
                if why:
                    refused.append(f"{m.name}: {why}")
                    continue
                rec = self.index.get(m.name)
                if rec is None:
                    refused.append(f"{m.name}: not in the manifest's index")
                    continue
                seen.add(m.name)
                self._stage(tf, m, rec, owners.uid(m), owners.gid(m))
        missing = sorted(set(self.index) - seen)
        refused += [f"{n}: in the manifest but not in the archive" for n in missing]
        if refused:
            raise InputError(f"{self.archive.name}: refusing to restore:\n  " +
                             "\n  ".join(refused[:20]) +
                             (f"\n  ... and {len(refused) - 20} more" if len(refused) > 20
                              else ""))
        self.warnings = owners.warnings
        self.changes.sort(key=lambda c: c.rel)
        if any(c.staged is not None for c in self.changes):
            fsutil.syncfs(self.staging)  # every staged file durable before commit

    def _stage(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rec: Dict[str, Any],
               uid: int, gid: int) -> None:
        host = self.host(m.name)
        self.seen[m.name] = (fingerprint(host), uid, gid)
        how = classify(host, rec, uid, gid)
        if how == "identical":
            self.identical += 1
            return
        kind = "dir" if m.isdir() else "symlink" if m.issym() else "file"
        change = Change(m.name, kind, how, mode=m.mode & 0o7777, uid=uid, gid=gid,
                        mtime=int(m.mtime), link=m.linkname if m.issym() else "")
        if kind == "file" and how != "meta":
            change.staged = self.staging / f"{len(self.changes)}"
            change.sha256 = self._write_staged(tf, m, change.staged, rec)
            os.chown(change.staged, uid, gid)
            os.chmod(change.staged, change.mode)
            for name, value in xattrs(m).items():
                with contextlib.suppress(OSError):
                    os.setxattr(change.staged, name, value, follow_symlinks=False)
            os.utime(change.staged, (change.mtime, change.mtime))
        self.changes.append(change)
        checkpoint.reached("files.stage")

    def _write_staged(self, tf: tarfile.TarFile, m: tarfile.TarInfo, dest: Path,
                      rec: Dict[str, Any]) -> str:
        src = tf.extractfile(m)
        assert src is not None
        h = hashlib.sha256()
        with open(dest, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if digest != rec.get("sha256"):
            raise InputError(f"{self.archive.name}: {m.name} does not match the manifest "
                             "(the bundle is corrupted)", hint="run `install verify`")
        return digest

    # -- commit / undo ------------------------------------------------------

    def commit(self) -> None:
        root = self.txn.root
        self._recheck()
        if self.step_id and self.changes:
            planned = self.records() + [{"kind": "dir", "path": "/" + rel}
                                        for rel in self._missing_parents(root)]
            self.txn.journal.begin(self.step_id, {"records": planned})
            self._begun = True
        self._back_up(root)
        for c in self.changes:
            self._apply(root, self.host(c.rel), c)
            c.applied = True
            checkpoint.reached("files.commit")
        self._dir_times(root)
        for path in self._copied_in.values():
            fsutil.syncfs(path)
        for d in sorted(self._dirs_changed, key=lambda p: (-len(p.parts), str(p))):
            fsutil.fsync_dir(d)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _recheck(self) -> None:
        """Classify again what changed on the target since prepare (see the module
        docstring); stage the whole set again if content is missing."""
        assert self.owners is not None
        self.host = HostPaths(self.txn.resolve, self.txn.root)  # parents may differ now
        owners = Owners(self.txn.root)
        remap = not owners.same_as(self.owners)
        changes = {c.rel: c for c in self.changes}
        again = 0
        for rel, (was, old_uid, old_gid) in self.seen.items():
            uid, gid = old_uid, old_gid
            if remap:
                who = RecordOwner(self.index[rel])
                uid, gid = owners.uid(who), owners.gid(who)
            host = self.host(rel)
            if (uid, gid) == (old_uid, old_gid) and fingerprint(host) == was:
                continue
            again += 1
            how = classify(host, self.index[rel], uid, gid)
            if not self._reclassified(changes, rel, how, uid, gid):
                log.info("%s: /%s changed on the target since it was staged: staging "
                         "the set again", self.describe(), rel)
                self.prepare()
                return
        if remap:
            self.warnings = owners.warnings
        if again:
            log.debug("%s: %d entries changed on the target since staging, classified "
                      "again", self.describe(), again)
            self.changes = sorted(changes.values(), key=lambda c: c.rel)

    def _reclassified(self, changes: Dict[str, Change], rel: str, how: str, uid: int,
                      gid: int) -> bool:
        """Update the change of entry `rel` to `how`; False if that needs content
        that was not staged."""
        rec = self.index[rel]
        c = changes.get(rel)
        if c is None:  # identical at prepare
            if how == "identical":
                return True
            if _kind(rec) == "file" and how != "meta":
                return False
            self.identical -= 1
            changes[rel] = Change(rel, _kind(rec), how, mode=int(rec["mode"], 8), uid=uid,
                                  gid=gid, mtime=int(rec.get("mtime", 0)),
                                  link=rec.get("target", ""))
            return True
        if c.kind == "file" and c.staged is None and how in ("create", "replace"):
            return False
        if how in ("identical", "meta") and c.staged is not None:
            os.unlink(c.staged)
            c.staged = None
        if how == "identical":
            del changes[rel]
            self.identical += 1
            return True
        c.how = how
        if (c.uid, c.gid) != (uid, gid):
            c.uid, c.gid = uid, gid
            if c.staged is not None:  # chown clears set-id bits: mode again after it
                os.chown(c.staged, uid, gid)
                os.chmod(c.staged, c.mode)
        return True

    def _back_up(self, root: Path) -> None:
        """Back up every file (or symlink) about to be replaced, then make all the
        backups durable at once, before any original is replaced."""
        made = False
        for c in self.changes:
            if c.how != "replace":
                continue
            host = self.host(c.rel)
            c.backup = self.txn.backup_path("/" + c.rel)
            c.backup.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if os.path.isdir(host) and not os.path.islink(host):
                raise InputError(f"/{c.rel}: is a directory on the target, a {c.kind} "
                                 "in the bundle; not replacing it")
            if os.path.islink(host):
                os.symlink(os.readlink(host), c.backup)
            else:
                fsutil.copy_file_meta(host, c.backup)
            made = True
        if made:
            fsutil.syncfs(self.txn.backup_dir)

    def _dir_times(self, root: Path) -> None:
        """The archive's mtimes on the set's directories at and above what this
        element (or an interrupted attempt of it) changed, deepest first."""
        touched: Set[str] = {c.rel for c in self.changes}
        touched |= {r["path"].lstrip("/") for r in self.earlier if r.get("path")}
        dirs: Set[str] = set()
        for rel in touched:
            while rel and rel not in dirs:
                rec = self.index.get(rel)
                if rec is not None and rec["type"] == "dir":
                    dirs.add(rel)
                rel = rel.rpartition("/")[0]
        for rel in sorted(dirs, key=lambda r: (-r.count("/"), r)):
            host = self.host(rel)
            mtime = int(self.index[rel].get("mtime", 0))
            st = os.lstat(host)
            if stat.S_ISDIR(st.st_mode) and int(st.st_mtime) != mtime:
                os.utime(host, (mtime, mtime))

    def _apply(self, root: Path, host: Path, c: Change) -> None:
        parent = host.parent
        if parent not in self._dirs_known:
            if not parent.is_dir():  # a missing parent outside the set's paths
                self._make_parents(root, parent)
            self._dirs_known.add(parent)
        if c.how == "meta":
            st = os.lstat(host)
            c.old_meta = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            os.chown(host, c.uid, c.gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(host, c.mode)
            return
        if c.kind == "dir":
            os.mkdir(host, 0o700)
            os.chown(host, c.uid, c.gid)
            os.chmod(host, c.mode)
            self._dirs_known.add(host)
        elif c.kind == "symlink":
            tmp = host.with_name(f".satchel-{os.getpid()}-{host.name}")
            os.symlink(c.link, tmp)
            os.chown(tmp, c.uid, c.gid, follow_symlinks=False)
            os.replace(tmp, host)
        else:
            assert c.staged is not None
            if self._move_in(c.staged, host):
                self._copied_in.setdefault(os.lstat(host).st_dev, host)
        self._dirs_changed.add(parent)
        fsutil.restorecon(host, root)

    def _missing_parents(self, root: Path) -> List[str]:
        """Directories outside the set that commit will create above its entries."""
        out: Set[str] = set()
        for c in self.changes:
            rel = c.rel.rpartition("/")[0]
            while rel and rel not in out and rel not in self.index \
                    and not os.path.lexists(self.host(rel)):
                out.add(rel)
                rel = rel.rpartition("/")[0]
        return sorted(out)

    def _make_parents(self, root: Path, path: Path) -> None:
        for d in fsutil.missing_dirs(path):
            os.mkdir(d, 0o755)
            self._dirs_changed.add(d.parent)
            self.parents.append(Change(str(d.relative_to(root)), "dir", "create",
                                       mode=0o755, applied=True))

    @staticmethod
    def _move_in(staged: Path, host: Path) -> bool:
        """Rename the staged file over `host`; True if it had to be copied (the
        copy's data is not synced yet)."""
        try:
            os.replace(staged, host)
            return False
        except OSError:  # staging on another file system: copy beside, then rename
            tmp = host.with_name(f".satchel-{os.getpid()}-{host.name}")
            shutil.copy2(staged, tmp)
            st = os.stat(staged)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, host)
            return True

    def abort(self) -> None:
        self.undo()
        shutil.rmtree(getattr(self, "staging", Path("/nonexistent")), ignore_errors=True)

    def _forget_attempt(self) -> None:
        """This attempt's changes are reverted: the journal goes back to what an
        interrupted earlier attempt left (its changes are still in place)."""
        if self._begun and self.step_id:
            self.txn.journal.abandon(self.step_id,
                                     {"records": self.earlier} if self.earlier else None)
            self._begun = False

    def undo(self) -> None:
        for c in sorted((c for c in self.changes + self.parents if c.applied),
                        key=lambda c: c.rel, reverse=True):
            host = self.host(c.rel)
            if c.how == "meta" and c.old_meta is not None:
                mode, uid, gid = c.old_meta
                os.chown(host, uid, gid, follow_symlinks=False)
                if not os.path.islink(host):
                    os.chmod(host, mode)
            elif c.backup is not None:
                if os.path.islink(c.backup):
                    tmp = host.with_name(f".satchel-{os.getpid()}-{host.name}")
                    os.symlink(os.readlink(c.backup), tmp)
                    os.replace(tmp, host)
                else:
                    fsutil.restore_copy(c.backup, host)
            elif c.kind == "dir":
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(host)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(host)
            c.applied = False
        self._forget_attempt()

    def records(self) -> List[Dict[str, Any]]:
        """State records of what this element changed, and of what an interrupted
        earlier attempt changed that this one found already done."""
        out = []
        for c in self.parents + self.changes:
            if c.kind == "dir" and c.how == "create":
                out.append({"kind": "dir", "path": "/" + c.rel})
            elif c.kind == "file" and c.how != "meta":
                out.append({"kind": "file", "path": "/" + c.rel,
                            "how": "replaced" if c.how == "replace" else "created",
                            "sha256": c.sha256})
        if not self.earlier:
            return out
        merged = {r["path"]: r for r in out}
        for r in self.earlier:  # the first attempt's wins: "created" stays created
            merged[r["path"]] = dict(r)
        return sorted(merged.values(), key=lambda r: (r["path"], r["kind"]))
