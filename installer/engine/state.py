"""The state registry: what each action created or changed on the target.

Lives in <root>/var/lib/satchel/state.json. Records made during a run stay
pending and are written (atomically) when the transaction ends, by an element
of the transaction itself, so a rollback after that restores the previous file.
Cleanup and re-runs read it.
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any, Dict, Iterable, List, Optional

from installer.engine import fsutil
from installer.engine.transaction import TransactionElement

FORMAT = 1
KINDS = ("files", "dirs", "packages", "databases", "services")


class StateRegistry:
    """`self.state` of plugins. Keys are target paths ("/etc/x") or names."""

    def __init__(self, state_dir: pathlib.Path, action: str, run_id: str = "") -> None:
        self.path = state_dir / "state.json"
        self.action = action
        self.run_id = run_id
        self._data = self._read()

    def _read(self) -> Dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT, "actions": {}}
        except (OSError, ValueError) as exc:
            from installer.errors import InputError

            raise InputError(f"cannot read state registry {self.path}: {exc}",
                             hint="restore it from backup or move it away") from None
        data.setdefault("actions", {})
        return data

    def _section(self, action: Optional[str], kind: str) -> Dict[str, Any]:
        actions = self._data["actions"]
        entry = actions.setdefault(action or self.action, {})
        return entry.setdefault(kind, {})

    # -- recording -----------------------------------------------------------
    def record_file(self, path: str, sha256: Optional[str], action: Optional[str] = None,
                    how: str = "created", **info: Any) -> None:
        """A file this action created or replaced (how="created"/"replaced").
        A file first created by satchel stays "created" when written again."""
        files = self._section(action, "files")
        old = files.get(path)
        if old is not None and old.get("how") == "created":
            how = "created"
        files[path] = dict(info, sha256=sha256, how=how, run=self.run_id)

    def record_dir(self, path: str, action: Optional[str] = None) -> None:
        self._section(action, "dirs")[path] = {"run": self.run_id}

    def record_package(self, name: str, action: Optional[str] = None, **info: Any) -> None:
        self._section(action, "packages")[name] = dict(info, run=self.run_id)

    def record_database(self, name: str, action: Optional[str] = None, **info: Any) -> None:
        self._section(action, "databases")[name] = dict(info, run=self.run_id)

    def record_service(self, name: str, action: Optional[str] = None, **info: Any) -> None:
        self._section(action, "services")[name] = dict(info, run=self.run_id)

    def forget(self, kind: str, name: str, action: Optional[str] = None) -> None:
        """Drop one record (e.g. cleanup removed the file)."""
        self._section(action, kind).pop(name, None)

    def apply(self, records: Iterable[Dict[str, Any]]) -> None:
        """Apply records of committed transaction elements."""
        for rec in records:
            rec = dict(rec)
            kind = rec.pop("kind")
            action = rec.pop("action", None)
            if kind == "file":
                self.record_file(rec.pop("path"), rec.pop("sha256", None), action, **rec)
            elif kind == "dir":
                self.record_dir(rec["path"], action)
            elif kind == "removed":
                for section in ("files", "dirs"):
                    self.forget(section, rec["path"], action)
            elif kind in ("package", "database", "service"):
                self._section(action, kind + "s")[rec.pop("name")] = dict(rec, run=self.run_id)
            else:
                raise ValueError(f"unknown state record kind {kind!r}")

    # -- reading ---------------------------------------------------------------
    def _get(self, kind: str, action: Optional[str]) -> Dict[str, Dict[str, Any]]:
        if action is None:
            merged: Dict[str, Dict[str, Any]] = {}
            for entry in self._data["actions"].values():
                merged.update(copy.deepcopy(entry.get(kind, {})))
            return merged
        return copy.deepcopy(self._data["actions"].get(action, {}).get(kind, {}))

    def files(self, action: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        """{target path: {"sha256", "how", "run", ...}} of one action, or of all."""
        return self._get("files", action)

    def dirs(self, action: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        return self._get("dirs", action)

    def packages(self, action: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        return self._get("packages", action)

    def databases(self, action: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        return self._get("databases", action)

    def services(self, action: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
        return self._get("services", action)

    def actions(self) -> List[str]:
        return sorted(self._data["actions"])

    # -- persisting ---------------------------------------------------------------
    def serialize(self) -> bytes:
        return (json.dumps(self._data, indent=2, sort_keys=True) + "\n").encode("utf-8")

    def commit_element(self) -> TransactionElement:
        """The element that writes the registry at transaction end (undo: the old one)."""
        return _StateCommit(self)


class _StateCommit(TransactionElement):
    bookkeeping = True  # not counted as a change of the target

    def __init__(self, state: StateRegistry) -> None:
        self.state = state
        self.old: Optional[bytes] = None

    def describe(self) -> str:
        return f"update state registry {self.state.path.name}"

    def prepare(self) -> None:
        path = self.state.path
        self.old = path.read_bytes() if path.exists() else None

    def commit(self) -> None:
        self.state.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fsutil.atomic_write(self.state.path, self.state.serialize(), mode=0o600)

    def undo(self) -> None:
        if self.old is None:
            self.state.path.unlink()
            fsutil.fsync_dir(self.state.path.parent)
        else:
            fsutil.atomic_write(self.state.path, self.old, mode=0o600)
