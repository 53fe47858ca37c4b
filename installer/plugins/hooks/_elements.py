"""Helpers for hook plugins (satchel's own and custom ones): install RPM files
shipped beside a plugin, and tell whether a file on the target is already as wanted
(so that a re-run changes nothing, not even the state registry)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from installer.engine.paths import gid_of, uid_of
from installer.engine.process import run
from installer.engine.transaction import TransactionElement
from installer.errors import RefusedError, SatchelError, ToolError
from installer.restore.packages import installed, rpm_root

log = logging.getLogger("satchel.hooks")


def unchanged(plugin: Any, path: str, data: bytes, mode: int,
              owner: Any = "root", group: Any = "root") -> bool:
    """True when target path `path` is a regular file holding `data` with `mode`
    and owner/group already (a FileWrite would change nothing)."""
    host = plugin.resolve(path, follow_last=False)
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
        return False
    if st.st_uid != uid_of(plugin.root, owner) or st.st_gid != gid_of(plugin.root, group):
        return False
    return st.st_size == len(data) and host.read_bytes() == data


def _query(paths: Sequence[Path]) -> List[Tuple[str, str, Path]]:
    """(name, NEVRA, path) of each RPM file."""
    out = run(["rpm", "-qp", "--nosignature", "--nodigest", "--qf",
               "%{NAME}\\t%{NEVRA}\\n", *[str(p) for p in paths]]).stdout
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    if len(rows) != len(paths):
        raise ToolError(f"rpm -qp read {len(rows)} of {len(paths)} RPM files")
    return [(name, nevra, Path(p)) for (name, nevra), p in zip(rows, paths)]


class LocalRpms(TransactionElement):
    """Install RPM files (from a plugin's own folder) into the root with rpm.

    prepare: what is already installed at that NEVRA is skipped; `rpm -U --test`
    refuses unmet requirements before any change. commit: `rpm -U`. undo:
    `rpm -e --nodeps` of what this element installed; an upgrade cannot be undone
    offline (the old RPM is gone) and is named for manual action.
    """

    def __init__(self, paths: Sequence[Path], step_id: Optional[str] = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.step_id = step_id
        self.todo: List[Tuple[str, str, Path]] = []
        self.upgraded: Dict[str, str] = {}  # new NEVRA -> old NEVRA
        self.ran = False

    def describe(self) -> str:
        return "install " + (", ".join(p.name for p in self.paths) or "no RPM files")

    def prepare(self) -> None:
        if not self.paths:
            return
        root = self.txn.root
        have = installed(root)
        have_nevras: Set[str] = {i.nevra for i in have}
        self.todo = [r for r in _query(self.paths) if r[1] not in have_nevras]
        for name, nevra, _ in self.todo:
            old = [i.nevra for i in have if i.name == name]
            if old:
                self.upgraded[nevra] = old[0]
        if not self.todo:
            log.info("already installed: %s", ", ".join(p.name for p in self.paths))
            return
        proc = rpm_root(root, ["-U", "--test", *[str(p) for _, _, p in self.todo]],
                        check=False)
        if proc.returncode != 0:
            raise RefusedError(f"cannot install {', '.join(n for _, n, _ in self.todo)}:\n"
                               + (proc.stderr or proc.stdout).strip(),
                               hint="the plugin's RPMs need something this host lacks")

    def commit(self) -> None:
        if not self.todo:
            return
        self.ran = True
        rpm_root(self.txn.root, ["-U", *[str(p) for _, _, p in self.todo]])

    def _remove(self) -> None:
        now = {i.nevra for i in installed(self.txn.root)}
        fresh = [n for _, n, _ in self.todo if n in now and n not in self.upgraded]
        if fresh:
            rpm_root(self.txn.root, ["-e", "--nodeps", *fresh])

    def abort(self) -> None:
        if self.ran:
            self._remove()

    def undo(self) -> None:
        if not self.ran:
            return
        self._remove()
        if self.upgraded:
            raise SatchelError("cannot undo offline: " + "; ".join(
                f"{new} was upgraded from {old}, reinstall {old}"
                for new, old in sorted(self.upgraded.items())))

    def records(self) -> List[Dict[str, Any]]:
        return [{"kind": "package", "name": name, "nevra": nevra,
                 "how": "upgraded" if nevra in self.upgraded else "installed",
                 "file": path.name}
                for name, nevra, path in self.todo]
