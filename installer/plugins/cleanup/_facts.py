"""What setup left on the target, as cleanup's plugins share it: the registry's
"setup" records, setup's configuration copy (recipe.json), what counts as NFS
(left alone), and the run's summary (what was planned, kept, dropped)."""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from installer.engine.paths import resolve_under
from installer.errors import InputError, RefusedError
from installer.plugins.setup._config import ANSWERS_COPY, CONFIG_COPY, STATE_DIR

REGISTRY = "/var/lib/satchel/state.json"
BACKUP_DIR = "/var/lib/satchel/backup/cleanup"  # database backups taken before a drop
SETUP = "setup"  # the action whose records cleanup undoes
# NFS is left alone (engine-cleanup's note 4), whatever setup recorded there.
NFS_FILES = ("/etc/exports", "/etc/sysconfig/nfs", "/etc/nfs.conf")
NFS_DIRS = ("/etc/exports.d",)


def _host(root: pathlib.Path, path: str) -> Optional[pathlib.Path]:
    try:
        return resolve_under(root, path, follow_last=False)
    except InputError:
        return None


def read_recipe(root: pathlib.Path) -> Dict[str, Any]:
    """The [setup] section the last setup kept (recipe.json), or {} when there is
    none or it cannot be read (cleanup then relies on the registry alone)."""
    host = _host(root, CONFIG_COPY)
    try:
        data = json.loads(host.read_text(encoding="utf-8")) if host else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _section(recipe: Dict[str, Any], name: str) -> Dict[str, Any]:
    value = recipe.get(name)
    return value if isinstance(value, dict) else {}


def traces(root: pathlib.Path) -> List[str]:
    """Target paths that show a setup ran here (and was not cleaned up): its
    answers, anything else in its state directory but the kept recipe.json, and,
    named by recipe.json, the PKI directory, the database configuration and the
    tools' password file."""
    found: List[str] = []
    state = _host(root, STATE_DIR)
    if state is not None and state.is_dir():
        for entry in sorted(os.listdir(state)):
            if f"{STATE_DIR}/{entry}" != CONFIG_COPY:
                found.append(f"{STATE_DIR}/{entry}")
    recipe = read_recipe(root)
    for sub, key in (("pki", "dir"), ("database", "config"), ("tools", "password_file")):
        path = _section(recipe, sub).get(key)
        if isinstance(path, str) and path.startswith("/"):
            host = _host(root, path)
            if host is not None and os.path.lexists(host) and path not in found:
                found.append(path)
    if ANSWERS_COPY in found:  # the most telling one first
        found.remove(ANSWERS_COPY)
        found.insert(0, ANSWERS_COPY)
    return found


def check_registry(root: pathlib.Path) -> None:
    """Refuse (exit 3, before any change) when the registry is missing or unreadable
    while setup's traces are there: without it cleanup cannot tell what setup
    created from what was there before (engine-cleanup's "if sequence II is not
    possible, don't start cleanup at all")."""
    host = _host(root, REGISTRY)
    problem = None
    if host is None or not host.exists():
        problem = "is missing"
    else:
        try:
            data = json.loads(host.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("actions", {}), dict):
                problem = "is not a state registry"
        except (OSError, ValueError) as exc:
            problem = f"cannot be read ({type(exc).__name__}: {exc})"
    if problem is None:
        return
    left = traces(root)
    if not left and problem == "is missing":
        return  # never set up (or already cleaned): nothing to clean
    shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
    what = f"setup's files are on this host ({shown})" if left else "it is damaged"
    raise RefusedError(
        f"cleanup refused: the state registry {REGISTRY} {problem}, but {what}; "
        "without the registry cleanup cannot tell what setup created from what was "
        "there before, so nothing was changed",
        hint=f"restore {REGISTRY} from a backup of /var/lib/satchel and run cleanup "
             "again; otherwise remove setup's files by hand (the list above) and drop "
             "its database, then run setup")


@dataclass
class Summary:
    """The run's findings, shared by cleanup's plugins (one per run)."""

    recipe: Dict[str, Any]
    work: List[str] = field(default_factory=list)      # changes planned
    kept: List[Tuple[str, str]] = field(default_factory=list)  # (path, why) for the user
    database_kept: List[str] = field(default_factory=list)
    handled: Dict[str, str] = field(default_factory=dict)  # path -> which plugin, why

    def section(self, name: str) -> Dict[str, Any]:
        return _section(self.recipe, name)

    @property
    def iso_path(self) -> Optional[str]:
        path = self.section("iso_domain").get("path")
        return path if isinstance(path, str) and path.startswith("/") else None

    def is_nfs(self, path: str) -> bool:
        """Left alone: the ISO domain (and all in it), exports and NFS settings."""
        if path in NFS_FILES:
            return True
        trees = list(NFS_DIRS) + ([self.iso_path] if self.iso_path else [])
        return any(path == t or path.startswith(t.rstrip("/") + "/") for t in trees)

    def service_units(self) -> Optional[List[str]]:
        """The main and auxiliary units of [setup.services], or None without it."""
        services = self.section("services")
        if not services:
            return None
        units = [services.get("main")]
        for aux in services.get("auxiliary") or []:
            units.append(aux.get("unit") if isinstance(aux, dict) else aux)
        return [u for u in units if isinstance(u, str) and u]


def summary(plugin: Any) -> Summary:
    """The run's Summary (made on first use, kept on the run's context)."""
    ctx = plugin._context
    found = getattr(ctx, "_cleanup_summary", None)
    if found is None:
        found = Summary(read_recipe(plugin.root))
        ctx._cleanup_summary = found
    return found


def _pgpass_fields(line: str) -> List[str]:
    """The fields of a .pgpass line (`\\` escapes; the 5th field takes the rest)."""
    fields: List[str] = []
    cur: List[str] = []
    chars = iter(line)
    for ch in chars:
        if ch == "\\":
            cur.append(next(chars, ""))
        elif ch == ":" and len(fields) < 4:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def _pgpass_match(line: str, want: Tuple[str, str, str, str], wildcards: bool) -> bool:
    if not line.strip() or line.lstrip().startswith("#"):
        return False
    fields = _pgpass_fields(line)
    return len(fields) == 5 and all(f == w or (wildcards and f == "*")
                                    for f, w in zip(fields[:4], want))


def pgpass_password(text: str, host: str, port: int, database: str,
                    user: str) -> Optional[str]:
    """The password of the first line matching host:port:database:user in a .pgpass
    text (libpq's rules: `*` matches anything), or None."""
    want = (host, str(port), database, user)
    for line in text.splitlines():
        if _pgpass_match(line, want, wildcards=True):
            return _pgpass_fields(line)[4]
    return None


def pgpass_without(text: str, host: str, port: int, database: str,
                   user: str) -> Tuple[str, int, int]:
    """(the .pgpass text without the lines for exactly host:port:database:user — the
    ones setup writes —, how many were taken out, how many other entries remain)."""
    want = (host, str(port), database, user)
    kept: List[str] = []
    removed = 0
    for line in text.splitlines():
        if _pgpass_match(line, want, wildcards=False):
            removed += 1
        else:
            kept.append(line)
    others = sum(1 for line in kept if line.strip() and not line.lstrip().startswith("#"))
    return ("\n".join(kept) + "\n" if kept else ""), removed, others
