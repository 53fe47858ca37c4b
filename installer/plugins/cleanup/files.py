"""Files and directories setup created, removed from its registry records.

- A file or symlink setup created ("how": "created") is removed when it is still
  what setup wrote: the same sha256 (a symlink: the same target). One that was
  edited since is kept and listed at the end, unless CLEANUP/removeChanged
  (--remove-changed). Secrets setup generated (the keystore password, the tools'
  password file) are recorded without a checksum: they are removed with the rest
  of the PKI and tools. Files setup replaced (they existed before setup) stay.
- Kept on purpose: /var/lib/satchel/setup/recipe.json (the appliance's setup
  configuration: `install setup` runs again from it, without the bundle), and
  NFS: the ISO domain and all in it, /etc/exports, /etc/exports.d/,
  /etc/sysconfig/nfs. The .pgpass is the database plugin's (its line goes with a
  dropped database, stays with a kept one).
- Then each directory setup created is removed when it is empty, deepest first.
- A record whose file is gone already is just forgotten (no change to the tree).

Each removal is a transaction element (FileRemove backs the file up; a removed
directory is made again on undo) whose "removed" record drops setup's record
when the transaction commits.

Answer keys:

  CLEANUP/removeChanged=bool:false  also remove files edited since setup wrote them
"""

from __future__ import annotations

import os
import stat
from typing import Any, Dict, List, Optional, Set, Tuple

from installer import engine
from installer.bundle import sha256_file
from installer.engine import Stages
from installer.plugins.cleanup import _facts
from installer.plugins.cleanup._elements import RemoveDir, RemoveFile
from installer.plugins.setup._config import CONFIG_COPY

KEYS = (
    engine.Key("CLEANUP/removeChanged", bool, default=False,
               doc="also remove files edited since setup wrote them (--remove-changed)"),
)


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._files: List[str] = []
        self._dirs: List[str] = []
        self._gone: List[Tuple[str, str]] = []  # (kind, path) of records to forget

    def _check_file(self, path: str, rec: Dict[str, Any]) -> Optional[str]:
        """None when `path` is still what setup wrote (else how it differs); raises
        FileNotFoundError when it is gone."""
        host = self.resolve(path, follow_last=False)
        st = os.lstat(host)
        if rec.get("symlink") is not None:
            if not stat.S_ISLNK(st.st_mode):
                return "no longer a symlink"
            target = os.readlink(host)
            return None if target == rec["symlink"] else f"now points to {target}"
        if stat.S_ISLNK(st.st_mode):
            return "now a symlink"
        if not stat.S_ISREG(st.st_mode):
            return "no longer a regular file"
        if not rec.get("sha256"):
            # A secret setup generated (keystore or tool password): no checksum was
            # recorded, on purpose; it is setup's, like the keys beside it.
            return None if rec.get("secret") else "setup recorded no checksum"
        return None if sha256_file(host) == rec["sha256"] else "edited since setup wrote it"

    @engine.event(stage=Stages.VALIDATION, name="cleanup.files.plan",
                  after=("cleanup.database.plan",))
    def _plan(self) -> None:
        found = _facts.summary(self)
        remove_changed = self.env["CLEANUP/removeChanged"]
        removed: Set[str] = set()
        for path, rec in sorted(self.state.files(action=_facts.SETUP).items()):
            if path == CONFIG_COPY:
                self.log.info("kept: %s (setup's configuration, for the next setup)", path)
                continue
            if found.is_nfs(path):
                self.log.info("left alone: %s (NFS)", path)
                continue
            if rec.get("how", "created") != "created":
                self.log.info("left in place: %s (it existed before setup)", path)
                continue
            if path in found.handled:
                self.log.info("%s: %s", path, found.handled[path])
                continue
            try:
                changed = self._check_file(path, rec)
            except FileNotFoundError:
                self._gone.append(("files", path))
                continue
            if changed and not remove_changed:
                found.kept.append((path, changed))
                self.log.info("kept: %s (%s)", path, changed)
                continue
            self._files.append(path)
            removed.add(path)
            self.plan(f"remove {path}" + (f" ({changed})" if changed else ""))
        for path in sorted(self.state.dirs(action=_facts.SETUP), key=_depth, reverse=True):
            if found.is_nfs(path):
                continue
            host = self.resolve(path, follow_last=False)
            if not os.path.lexists(host):
                self._gone.append(("dirs", path))
                continue
            if not host.is_dir() or host.is_symlink():
                continue
            rest = [e for e in os.listdir(host) if f"{path.rstrip('/')}/{e}" not in removed]
            if rest:
                self.log.info("kept: directory %s (not empty: %s)", path,
                              ", ".join(sorted(rest)[:5]))
                continue
            self._dirs.append(path)
            removed.add(path)
            self.plan(f"remove directory {path} (empty then)")
        if self._files or self._dirs:
            found.work.append(f"{len(self._files)} file(s), {len(self._dirs)} directories")
        if self._gone:
            self.log.info("already gone, forgotten: %s",
                          ", ".join(p for _, p in self._gone))

    @engine.event(stage=Stages.MISC, name="cleanup.files.remove",
                  condition=lambda self: not self.dry_run)
    def _remove(self) -> None:
        for kind, path in self._gone:
            self.state.forget(kind, path, action=_facts.SETUP)
        for path in self._files:
            self.transaction.append(RemoveFile(path))
        for path in self._dirs:
            host = self.resolve(path, follow_last=False)
            if host.is_dir() and not os.listdir(host):
                self.transaction.append(RemoveDir(path))
            else:
                self.log.info("kept: directory %s (not empty)", path)


def _depth(path: str) -> Tuple[int, str]:
    return (path.rstrip("/").count("/"), path)
