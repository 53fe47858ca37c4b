"""DropDatabase: the transaction element that drops setup's database after a
pg_dump backup, and recreates it from that backup on undo.

prepare: pg_dump -Fc into a new 0600 file (its directory 0700), checked with
  `pg_restore -l`; when the role is to be dropped too, its attributes (and, as a
  superuser, its password verifier) are read so undo can make it again.
commit: DROP DATABASE (other sessions terminated first), then DROP ROLE — a role
  that still owns or holds something elsewhere is kept (logged), not an error.
undo / abort after the drop: the role made again, then `pg_restore -C` (creates
  the database with its owner, encoding, locale and grants, then its content).

Passwords reach psycopg2 as a connect argument and the client tools through a
0600 PGPASSFILE that is unlinked before they start (ConnParams.tool_env): never
on a command line, in the environment or in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import time
from typing import Any, Dict, List, Optional

from installer.engine.process import run
from installer.engine.transaction import TransactionElement
from installer.errors import SatchelError, ToolError
from installer.restore.database import ConnParams, Server

log = logging.getLogger("satchel.cleanup")

_ROLE_FLAGS = (("rolsuper", "SUPERUSER"), ("rolinherit", "INHERIT"),
               ("rolcreaterole", "CREATEROLE"), ("rolcreatedb", "CREATEDB"),
               ("rolcanlogin", "LOGIN"), ("rolreplication", "REPLICATION"),
               ("rolbypassrls", "BYPASSRLS"))


def _execute(srv: Server, stmt: Any) -> None:
    """A statement without parameters (a literal may hold a '%')."""
    with srv.conn.cursor() as cur:
        cur.execute(stmt)


def new_backup_file(directory: pathlib.Path, name: str) -> pathlib.Path:
    """A new, empty 0600 file for the dump of `name` in `directory` (made 0700)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    for n in range(1000):
        path = directory / f"{safe}-{stamp}{f'-{n}' if n else ''}.dump"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise SatchelError(f"cannot make a backup file for database {name} in {directory}")


class DropDatabase(TransactionElement):
    """Back up and drop database `name` (see the module docstring)."""

    def __init__(self, name: str, params: ConnParams, bindir: pathlib.Path,
                 backup_dir: pathlib.Path, role: Optional[str] = None,
                 role_password: Optional[str] = None) -> None:
        self.name, self.params, self.bindir = name, params, bindir
        self.backup_dir = backup_dir
        self.role = role  # also drop this role (setup created it; admin connection)
        self.role_password = role_password  # to make it again when no verifier is readable
        self.backup: Optional[pathlib.Path] = None
        self.dropped = False
        self.role_dropped = False
        self.role_info: Optional[Dict[str, Any]] = None
        self.role_verifier: Optional[str] = None

    def describe(self) -> str:
        role = f" and role {self.role}" if self.role else ""
        return (f"drop database {self.name}{role} on {self.params.host}:{self.params.port}"
                + (f" (backup {self.backup})" if self.backup else ""))

    def _tool(self, argv: List[Any], check: bool = True) -> Any:
        with self.params.tool_env() as (env, fds):
            return run([*argv, "-w", "-h", self.params.host, "-p", str(self.params.port),
                        "-U", self.params.user], env=env, pass_fds=fds, check=check)

    def prepare(self) -> None:
        with Server(self.params) as srv:
            if self.role:
                self._read_role(srv)
        self.backup = new_backup_file(self.backup_dir, self.name)
        log.info("database %s: backup with pg_dump into %s", self.name, self.backup)
        self._tool([self.bindir / "pg_dump", "-Fc", "-f", self.backup, "-d", self.name])
        self._check_backup()

    def _check_backup(self) -> None:
        assert self.backup is not None
        proc = run([self.bindir / "pg_restore", "-l", self.backup], check=False)
        if proc.returncode != 0 or "; Archive created at" not in (proc.stdout or ""):
            raise ToolError(f"the backup {self.backup} of database {self.name} cannot be "
                            "read back (pg_restore -l); nothing was dropped")

    def _read_role(self, srv: Server) -> None:
        cols = ", ".join(c for c, _ in _ROLE_FLAGS)
        rows = srv.query(f"SELECT {cols}, rolconnlimit, rolvaliduntil FROM "
                         "pg_catalog.pg_roles WHERE rolname = %s", (self.role,))
        if not rows:
            log.info("role %s does not exist any more", self.role)
            self.role = None
            return
        self.role_info = dict(zip([c for c, _ in _ROLE_FLAGS] + ["connlimit", "validuntil"],
                                  rows[0]))
        with contextlib.suppress(srv.psycopg2.Error):  # only a superuser reads pg_authid
            found = srv.query("SELECT rolpassword FROM pg_catalog.pg_authid "
                              "WHERE rolname = %s", (self.role,))
            self.role_verifier = found[0][0] if found else None

    def commit(self) -> None:
        with Server(self.params) as srv:
            srv.drop(self.name)
            self.dropped = True
            if self.role:
                try:
                    _execute(srv, srv.sql("DROP ROLE {}", self.role))
                    self.role_dropped = True
                    log.info("role %s dropped", self.role)
                except srv.psycopg2.Error as exc:
                    log.warning("role %s kept: %s", self.role, " ".join(str(exc).split()))

    def abort(self) -> None:
        if self.dropped or self.role_dropped:
            self.undo()
        elif self.backup is not None:  # nothing dropped: the (maybe partial) dump goes
            with contextlib.suppress(FileNotFoundError):
                self.backup.unlink()
            self.backup = None

    def undo(self) -> None:
        with Server(self.params) as srv:
            if self.role_dropped:
                self._create_role(srv)
                self.role_dropped = False
            if self.dropped and srv.exists(self.name):
                raise SatchelError(f"database {self.name} exists again: restore {self.backup} "
                                   "by hand (pg_restore -C) if it is not the one dropped")
        if self.dropped:
            assert self.backup is not None
            proc = self._tool([self.bindir / "pg_restore", "-C", "--exit-on-error",
                               "-d", "postgres", self.backup], check=False)
            if proc.returncode != 0:
                tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
                raise SatchelError(
                    f"database {self.name} could not be restored from {self.backup} "
                    f"(pg_restore exit {proc.returncode}: {self.params.scrub(tail[0])}); "
                    "restore it as a role that may create databases: pg_restore -C -d "
                    f"postgres {self.backup}")
            self.dropped = False
            log.info("database %s restored from %s", self.name, self.backup)

    def _create_role(self, srv: Server) -> None:
        info = self.role_info or {}
        sql = srv.psycopg2.sql
        opts = [sql.SQL(flag if info.get(col) else "NO" + flag) for col, flag in _ROLE_FLAGS]
        if info.get("connlimit", -1) != -1:
            opts.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(info["connlimit"])))
        if info.get("validuntil") is not None:
            opts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(str(info["validuntil"]))))
        password = self.role_verifier or self.role_password
        if password:
            opts.append(sql.SQL("PASSWORD {}").format(sql.Literal(password)))
        assert self.role is not None
        stmt = sql.SQL("CREATE ROLE {} WITH {}").format(sql.Identifier(self.role),
                                                        sql.SQL(" ").join(opts))
        _execute(srv, stmt)
        log.info("role %s made again", self.role)

    def records(self) -> List[Dict[str, Any]]:
        return []  # the plugin forgets setup's database record when this commits
