"""A throwaway PostgreSQL cluster on 127.0.0.1, for the demo and the tests.

initdb refuses to run as root, so when we are root the cluster belongs to the
`postgres` user: initdb and pg_ctl run through runuser, and `basedir` must be
reachable by that user (not under /root). Clients (psql, pg_dump, psycopg2) run
as us and authenticate with SCRAM through a pgpass file (mode 0600): the password
is never on a command line, in the environment or in a log.

Layout under basedir (mode 0711): `data/` (PGDATA, the server's user, 0700),
`run/` (the unix socket and `postgres.log`), `pgpass` (ours, 0600).

The cluster is for throwaway data: fsync is off unless `durable=True`.

    with Cluster(tmpdir) as pg:          # init() + start(); stop() on exit
        pg.load_sql("demo", [Path("payload/demo/sql/schema.sql")])
        psycopg2.connect(pg.dsn("demo"))
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import pwd
import secrets
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import psycopg2
from psycopg2 import sql as pgsql
from psycopg2.extensions import make_dsn

from bundler.run import run
from installer.errors import InputError, ToolError

log = logging.getLogger("satchel")

SERVER_USER = "postgres"  # the OS user that owns the cluster when we are root
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep room for ".s.PGSQL.NNNNN"


@functools.lru_cache(maxsize=1)
def pg_bindirs() -> dict[int, Path]:
    """Installed PostgreSQL bindirs by major version, looked up once per process:
    the installer's lookup (pg_config's bindir, PGDG's, Debian's, PATH) for pg_dump."""
    from installer.restore.database import pg_bindirs as lookup

    return dict(lookup("pg_dump"))


def default_bindir() -> Path:
    """The bindir of the newest installed PostgreSQL with a server (initdb)."""
    for _, d in sorted(pg_bindirs().items(), reverse=True):
        if (d / "initdb").is_file():
            return d
    raise InputError("no PostgreSQL server found (initdb)",
                     hint="install the postgresql package (apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_private(path: Path, text: str) -> None:
    """Create `path` with mode 0600 before any byte is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


class Cluster:
    """One throwaway cluster under `basedir`; `init()`, `start()`, `stop()`."""

    host = "127.0.0.1"
    superuser = "postgres"

    def __init__(self, basedir: Path, *, bindir: Optional[Path] = None,
                 durable: bool = False) -> None:
        self.basedir = Path(basedir).absolute()
        self.datadir = self.basedir / "data"
        self.sockdir = self.basedir / "run"
        self.logfile = self.sockdir / "postgres.log"
        self.passfile = self.basedir / "pgpass"
        self.port = 0
        self.durable = durable
        self._bindir = bindir
        self._owner = SERVER_USER if os.geteuid() == 0 else None
        self._running = False

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = default_bindir()
        return self._bindir

    # -- life cycle --------------------------------------------------------

    def init(self, superuser_password_file: Optional[Path] = None) -> None:
        """initdb with SCRAM auth, UTF8 and the C locale; write the pgpass file."""
        if (self.datadir / "PG_VERSION").exists():
            raise InputError(f"{self.datadir}: a cluster is already initialised there")
        if len(str(self.sockdir)) > SOCKET_PATH_MAX:
            raise InputError(f"{self.basedir}: path too long for a unix socket",
                             hint="use a shorter directory, e.g. under /tmp")
        if superuser_password_file is not None:
            lines = Path(superuser_password_file).read_text(encoding="utf-8").splitlines()
            password = lines[0] if lines else ""
            if not password:
                raise InputError(f"{superuser_password_file}: the first line is empty")
        else:
            password = secrets.token_urlsafe(24)
        self.basedir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.basedir, 0o711)
        self._check_reachable()
        for d in (self.datadir, self.sockdir):
            d.mkdir(mode=0o700, exist_ok=True)
            self._give(d)
        _write_private(self.passfile, f"*:*:*:{pgpass_escape(self.superuser)}:"
                                      f"{pgpass_escape(password)}\n")
        pwfile = self.sockdir / "initdb.pw"
        _write_private(pwfile, password + "\n")
        self._give(pwfile)
        try:
            run([self.bindir / "initdb", "-D", self.datadir, "-U", self.superuser,
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                 "--locale=C", *([] if self.durable else ["--no-sync"])],
                user=self._owner)
        finally:
            pwfile.unlink(missing_ok=True)
        sock = str(self.sockdir).replace("'", "''")
        settings = [f"listen_addresses = '{self.host}'",
                    f"unix_socket_directories = '{sock}'",
                    "max_connections = 50", "log_min_messages = warning"]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# satchel throwaway cluster\n" + "\n".join(settings) + "\n")

    def start(self) -> None:
        """Start on a free port (pg_ctl -w); retried when the port was taken meanwhile."""
        if self._running:
            return
        started = time.monotonic()
        for attempt in range(3):
            self.port = _free_port()
            proc = run([self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.logfile,
                        "-w", "-t", "60", "-o", f"-p {self.port}", "start"],
                       user=self._owner, check=False)
            if proc.returncode == 0:
                break
            tail = self.log_tail()
            if "already in use" not in tail or attempt == 2:
                raise ToolError(f"pg_ctl start failed with exit code {proc.returncode}: "
                                f"{tail or 'no log output'}",
                                hint=f"see {self.logfile}")
        self._running = True
        atexit.register(self.stop)
        log.debug("postgresql started on %s:%d in %.2fs", self.host, self.port,
                  time.monotonic() - started)

    def stop(self) -> None:
        """Fast shutdown; idempotent, never raises, safe from atexit."""
        if not self._running:
            return
        self._running = False
        atexit.unregister(self.stop)
        pid = self.pid()
        try:
            proc = run([self.bindir / "pg_ctl", "-D", self.datadir, "-m", "fast",
                        "-w", "-t", "30", "stop"], user=self._owner, check=False)
            ok = proc.returncode == 0
        except Exception:  # stop must not raise (atexit, teardown)
            ok = False
        if not ok and pid is not None:
            log.warning("pg_ctl stop failed; killing postmaster %d", pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of all backends
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def pid(self) -> Optional[int]:
        """The postmaster's pid while it runs (from postmaster.pid)."""
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def __enter__(self) -> Cluster:
        if not (self.datadir / "PG_VERSION").exists():
            self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        return make_dsn(host=self.host, port=self.port, user=self.superuser,
                        dbname=dbname, passfile=str(self.passfile), connect_timeout=10)

    def connect(self, dbname: str = "postgres", autocommit: bool = True) -> Any:
        conn = psycopg2.connect(self.dsn(dbname))
        conn.autocommit = autocommit
        return conn

    def env(self, dbname: Optional[str] = None) -> dict[str, str]:
        """libpq variables for client tools (psql, pg_dump): no password, a passfile."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.superuser,
               "PGPASSFILE": str(self.passfile), "PGCONNECT_TIMEOUT": "10"}
        if dbname is not None:
            env["PGDATABASE"] = dbname
        return env

    def run_sql(self, dbname: str, sql: str) -> list[tuple[Any, ...]]:
        """Run SQL (autocommit) on `dbname`; the rows of the last statement, if any."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str, owner: Optional[str] = None) -> None:
        q = pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name))
        if owner is not None:
            q = pgsql.SQL("{} OWNER {}").format(q, pgsql.Identifier(owner))
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(q)
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                            .format(pgsql.Identifier(name)))
        finally:
            conn.close()

    def load_sql(self, dbname: str, files: Sequence[Path], create: bool = True) -> None:
        """Create `dbname` (unless create=False) and run each SQL file with psql,
        one transaction per file, stopping at the first error."""
        if create:
            self.create_database(dbname)
        for f in files:
            run([self.bindir / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                 "--single-transaction", "-f", Path(f).absolute()],
                env=self.env(dbname))

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    # -- helpers -----------------------------------------------------------

    def _give(self, path: Path) -> None:
        if self._owner is not None:
            pw = pwd.getpwnam(self._owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _check_reachable(self) -> None:
        if self._owner is None:
            return
        proc = run(["test", "-x", self.basedir], user=self._owner, check=False)
        if proc.returncode != 0:
            raise InputError(f"{self.basedir}: the {self._owner} user cannot reach this "
                             "directory", hint="put the cluster in a directory outside "
                                               "/root, e.g. under /tmp")


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
