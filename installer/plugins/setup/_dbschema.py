"""What the database plugin (database.py) works with: the schema scripts, the
.pgpass file, SCRAM verifiers, the pg_dump/pg_restore pair, and the transaction
element that installs or upgrades the application's database.

SchemaChange (one per run, only when something is to change in the database):

- prepare, as the admin: create the role (LOGIN, its SCRAM verifier computed here,
  so the password is never in a statement) or set its new password (the old
  verifier kept for undo); create the database (owner the role, template0, UTF8);
  when the database existed, a `pg_dump -Fc` backup first (0600 file, password
  through a PGPASSFILE fd). Then, as the role, in ONE transaction: the version
  table when missing, each pending script, each recorded in the version table.
  A failing script rolls that transaction back; abort then drops what prepare
  created and removes the backup, so the database is as it was.
- commit: COMMIT.
- undo (a later failure of the run): a database this run created is dropped; an
  existing one is dropped and recreated from the backup (`pg_restore --create`);
  a role this run created is dropped, a changed password set back. The backup
  is removed once restored (kept, and named in the error, if restoring fails).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import hashlib
import hmac
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from installer.engine.fsutil import missing_dirs
from installer.engine.process import run
from installer.engine.transaction import TransactionElement
from installer.errors import InputError, RefusedError, SatchelError, ToolError
from installer.restore.database import (
    ConnParams,
    Server,
    load_psycopg2,
    majors_found,
    pg_bindirs,
    pick_major,
)

log = logging.getLogger("satchel.setup.database")

SCRIPT_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$")
# Database, role and table names: no quoting surprises in libpq arguments
# (a `=` in --dbname makes it a connection string) or in .pgpass lines.
DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
PASSWORD_MAX = 190  # fits RSA-2048 OAEP (214 bytes) with room to spare
SCRAM_ITERATIONS = 4096
SYSTEM_SCHEMAS = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"


# -- schema scripts --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Script:
    version: int
    name: str
    sha256: str
    path: Path  # host path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def read_scripts(host_dir: Path, target_dir: str) -> List[Script]:
    """The NNNN_description.sql scripts of `host_dir`, by version. Other files are
    ignored; a malformed *.sql name or a duplicate number is an InputError."""
    if not host_dir.is_dir():
        raise InputError(f"[setup.database] scripts: {target_dir} is not a directory",
                         hint="install the package that ships the schema scripts")
    problems: List[str] = []
    by_version: Dict[int, Script] = {}
    for entry in sorted(host_dir.iterdir()):
        if not entry.name.endswith(".sql"):
            continue
        m = SCRIPT_NAME.match(entry.name)
        if not m or int(m.group(1)) == 0 or not entry.is_file():
            problems.append(f"{entry.name}: not a NNNN_description.sql file (NNNN from 0001)")
            continue
        version = int(m.group(1))
        if version in by_version:
            problems.append(f"{entry.name}: version {version} also in "
                            f"{by_version[version].name}")
            continue
        data = entry.read_bytes()
        by_version[version] = Script(version, entry.name, hashlib.sha256(data).hexdigest(),
                                     entry)
    if problems:
        raise InputError(f"schema scripts in {target_dir}: " + "; ".join(problems))
    if not by_version:
        raise InputError(f"schema scripts: no NNNN_description.sql file in {target_dir}")
    return [by_version[v] for v in sorted(by_version)]


# -- .pgpass -----------------------------------------------------------------------

def pgpass_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _pgpass_fields(line: str) -> List[str]:
    fields: List[str] = []
    buf: List[str] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            buf.append(line[i + 1])
            i += 2
            continue
        if c == ":" and len(fields) < 4:
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        i += 1
    fields.append("".join(buf))
    return fields


def pgpass_lookup(text: Optional[str], host: str, port: int, db: str, user: str
                  ) -> Optional[str]:
    """The password of the line for exactly host:port:db:user (no wildcards)."""
    for line in (text or "").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _pgpass_fields(line)
        if len(fields) == 5 and fields[:4] == [host, str(port), db, user] and fields[4]:
            return fields[4]
    return None


def pgpass_update(text: Optional[str], host: str, port: int, db: str, user: str,
                  password: str) -> bytes:
    """`text` with the line for host:port:db:user set to `password` (replaced in
    place, else appended); other lines kept."""
    want = [host, str(port), db, user]
    line = ":".join(pgpass_escape(f) for f in [*want, password])
    out, done = [], False
    for old in (text or "").splitlines():
        fields = _pgpass_fields(old)
        if len(fields) == 5 and fields[:4] == want and not old.lstrip().startswith("#"):
            if not done:
                out.append(line)
                done = True
            continue
        out.append(old)
    if not done:
        out.append(line)
    return ("\n".join(out) + "\n").encode("utf-8")


# -- passwords -----------------------------------------------------------------------

def password_problem(password: str) -> Optional[str]:
    if not password:
        return "empty"
    if len(password) > PASSWORD_MAX:
        return f"longer than {PASSWORD_MAX} characters"
    if not all(" " <= c <= "~" for c in password):
        return "only printable ASCII characters are accepted"
    return None


def scram_verifier(password: str, salt: Optional[bytes] = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (printable
    ASCII: SASLprep leaves it unchanged), so CREATE/ALTER ROLE never carries the
    password itself."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()
    return (f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}"
            f"${b64(stored_key)}:{b64(server_key)}")


def auth_failed(error: InputError) -> bool:
    text = error.message.lower()
    return "password" in text or "authentication" in text


# -- what a database holds -------------------------------------------------------

@dataclasses.dataclass
class SchemaState:
    """The version table of the application's database, as found."""

    table_exists: bool = False
    empty: bool = True
    applied: Dict[int, Tuple[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def version(self) -> int:
        return max(self.applied) if self.applied else 0


def read_state(conn: Any, table: str) -> SchemaState:
    """The version table and whether the database holds anything of its own."""
    sql = load_psycopg2().sql
    state = SchemaState()
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_catalog.pg_tables WHERE tablename = %s "
                    "AND schemaname = ANY (pg_catalog.current_schemas(false))", (table,))
        state.table_exists = cur.fetchone() is not None
        if state.table_exists:
            cur.execute(sql.SQL("SELECT version, script, sha256 FROM {}").format(
                sql.Identifier(table)))
            state.applied = {int(v): (s, h) for v, s, h in cur.fetchall()}
        cur.execute("SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN "
                    "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE "
                    f"{SYSTEM_SCHEMAS}) + (SELECT count(*) FROM pg_catalog.pg_proc p "
                    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE "
                    f"{SYSTEM_SCHEMAS})")
        state.empty = int(cur.fetchone()[0]) == 0
    if conn.autocommit is False:
        conn.rollback()
    return state


def inspect(params: ConnParams, db: str, table: str) -> SchemaState:
    """read_state of database `db`, connected with `params` (an InputError when the
    connection fails, a RefusedError when reading fails)."""
    psycopg2 = load_psycopg2()
    conn = params.connect(db, autocommit=False)
    try:
        return read_state(conn, table)
    except psycopg2.Error as exc:
        raise RefusedError(f"database {db}: cannot read its {table} table as {params.user}: "
                           f"{params.scrub(str(exc))}",
                           hint="the role must own the database and its version table") \
            from None
    finally:
        conn.close()


# -- pg_dump / pg_restore ------------------------------------------------------------

def dump_tools(server_major: int) -> Tuple[Path, Path]:
    """(pg_dump, pg_restore) of one installed PostgreSQL not older than the server
    (the server's own major when installed); RefusedError when there is none."""
    dumps, restores = pg_bindirs("pg_dump"), pg_bindirs("pg_restore")
    major = pick_major({m: d for m, d in dumps.items() if m in restores}, server_major,
                       server_major)
    if major is None:
        raise RefusedError(f"upgrading the database needs pg_dump and pg_restore of "
                           f"PostgreSQL {server_major} or newer for its backup (have: "
                           f"{majors_found(dumps)})",
                           hint=f"install the PostgreSQL {server_major} client tools")
    return dumps[major] / "pg_dump", restores[major] / "pg_restore"


def backup_name(db: str, now: Optional[datetime.datetime] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{db}-{now.strftime('%Y%m%dT%H%M%SZ')}.dump"


# -- the transaction element -----------------------------------------------------------

@dataclasses.dataclass
class DbPlan:
    """What validation found and decided (database.py fills it)."""

    database: str
    user: str
    app: ConnParams                      # the role, with its password
    admin: Optional[ConnParams] = None   # None: the admin is not needed
    version_table: str = "schema_version"
    action: str = "current"              # install | upgrade | current | held
    create_role: bool = False
    create_db: bool = False
    change_password: bool = False
    state: SchemaState = dataclasses.field(default_factory=SchemaState)
    scripts: List[Script] = dataclasses.field(default_factory=list)
    pending: List[Script] = dataclasses.field(default_factory=list)
    tools: Optional[Tuple[Path, Path]] = None
    backup_dir: Optional[Path] = None    # host path of <root>/var/lib/satchel/backup/setup
    backup_target_dir: str = ""

    @property
    def changes_db(self) -> bool:
        return self.create_role or self.create_db or self.change_password or (
            self.action in ("install", "upgrade") and bool(self.pending))


class SchemaChange(TransactionElement):
    """Install or upgrade the application's database (see the module docstring)."""

    def __init__(self, plan: DbPlan, previous: Optional[Dict[str, Any]] = None) -> None:
        self.plan = plan
        self.previous = dict(previous or {})
        self.conn: Any = None
        self.role_created = False
        self.db_created = False
        self.old_verifier: Optional[str] = None
        self.backup: Optional[Path] = None
        self.backup_target: Optional[str] = None
        self.made_dirs: List[Path] = []

    def describe(self) -> str:
        p = self.plan
        what = {"install": "install", "upgrade": "upgrade"}.get(p.action, "update")
        extra = f", backup {self.backup_target}" if self.backup_target else ""
        return f"{what} database {p.database} (role {p.user}){extra}"

    def _admin(self) -> Server:
        assert self.plan.admin is not None
        return Server(self.plan.admin)

    # -- prepare / commit --------------------------------------------------------
    def prepare(self) -> None:
        p = self.plan
        if p.create_role or p.create_db or p.change_password or self._needs_backup():
            with self._admin() as srv:
                verifier = scram_verifier(p.app.password or "")
                if p.create_role:
                    log.info("create role %s", p.user)
                    srv.query(srv.sql("CREATE ROLE {} LOGIN PASSWORD %s", p.user), (verifier,))
                    self.role_created = True
                elif p.change_password:
                    rows = srv.query("SELECT rolpassword FROM pg_catalog.pg_authid "
                                     "WHERE rolname = %s", (p.user,))
                    self.old_verifier = rows[0][0] if rows else None
                    log.info("set a new password for role %s", p.user)
                    srv.query(srv.sql("ALTER ROLE {} LOGIN PASSWORD %s", p.user), (verifier,))
                if p.create_db:
                    log.info("create database %s (owner %s)", p.database, p.user)
                    srv.query(srv.sql("CREATE DATABASE {} OWNER {} TEMPLATE template0 "
                                      "ENCODING 'UTF8'", p.database, p.user))
                    self.db_created = True
            if self._needs_backup():
                self._dump()
        if p.action in ("install", "upgrade") and p.pending:
            self._apply()

    def _needs_backup(self) -> bool:
        p = self.plan
        return not p.create_db and p.action in ("install", "upgrade") and bool(p.pending)

    def _dump(self) -> None:
        p = self.plan
        assert p.admin is not None and p.tools is not None and p.backup_dir is not None
        for d in missing_dirs(p.backup_dir):
            os.mkdir(d, 0o700)
            self.made_dirs.append(d)
        name = backup_name(p.database)
        for n in range(100):
            candidate = name if n == 0 else name.replace(".dump", f"-{n}.dump")
            try:
                fd = os.open(p.backup_dir / candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600)
            except FileExistsError:
                continue
            os.close(fd)
            name = candidate
            break
        self.backup = p.backup_dir / name
        self.backup_target = f"{p.backup_target_dir}/{name}"
        log.info("database %s: backup to %s", p.database, self.backup_target)
        with p.admin.tool_env() as (env, fds):
            try:
                run([p.tools[0], "-Fc", "--no-password", "-h", p.admin.host,
                     "-p", str(p.admin.port), "-U", p.admin.user, "-f", self.backup,
                     f"--dbname={p.database}"], env=env, pass_fds=fds)
            except ToolError as exc:
                raise ToolError(f"database {p.database}: the backup (pg_dump) failed: "
                                f"{p.admin.scrub(exc.hint or exc.message)}",
                                hint="the database was not changed") from None
        os.chmod(self.backup, 0o600)

    def _apply(self) -> None:
        p = self.plan
        psycopg2 = load_psycopg2()
        sql = psycopg2.sql
        table = sql.Identifier(p.version_table)
        self.conn = p.app.connect(p.database, autocommit=False)
        current = "the version table"
        try:
            with self.conn.cursor() as cur:
                if not p.state.table_exists:
                    cur.execute(sql.SQL(
                        "CREATE TABLE {} (version integer PRIMARY KEY, script text NOT NULL, "
                        "sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(table))
                for script in p.pending:
                    current = script.name
                    log.info("database %s: apply %s", p.database, script.name)
                    cur.execute(script.text())
                    cur.execute(sql.SQL("INSERT INTO {} (version, script, sha256) "
                                        "VALUES (%s, %s, %s)").format(table),
                                (script.version, script.name, script.sha256))
        except psycopg2.Error as exc:
            reason = p.app.scrub(str(exc).strip()) or type(exc).__name__
            raise SatchelError(f"database {p.database}: {current} failed: {reason}",
                               hint="its transaction was rolled back: the database is as "
                                    "it was") from None

    def commit(self) -> None:
        if self.conn is not None:
            self.conn.commit()
            self.conn.close()
            self.conn = None

    # -- abort / undo ----------------------------------------------------------------
    def abort(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.rollback()
                self.conn.close()
            self.conn = None
        if self.db_created or self.role_created or self.old_verifier is not None:
            with self._admin() as srv:
                self._undo_admin(srv)
        self._remove_backup()

    def undo(self) -> None:
        p = self.plan
        if self.db_created or self.role_created or self.old_verifier is not None \
                or self.backup is not None:
            with self._admin() as srv:
                if self.backup is not None and not self.db_created:
                    self._restore(srv)
                self._undo_admin(srv)
        self._remove_backup()
        log.info("database %s: back as it was before this run", p.database)

    def _undo_admin(self, srv: Server) -> None:
        p = self.plan
        if self.db_created:
            srv.drop(p.database)
            self.db_created = False
        if self.role_created:
            srv.query(srv.sql("DROP ROLE IF EXISTS {}", p.user))
            self.role_created = False
        elif self.old_verifier is not None:
            srv.query(srv.sql("ALTER ROLE {} PASSWORD %s", p.user), (self.old_verifier,))
            self.old_verifier = None

    def _restore(self, srv: Server) -> None:
        p = self.plan
        assert p.admin is not None and p.tools is not None and self.backup is not None
        maintenance = srv.conn.get_dsn_parameters().get("dbname", "postgres")
        log.info("database %s: restore from %s", p.database, self.backup_target)
        srv.drop(p.database)
        with p.admin.tool_env() as (env, fds):
            try:
                run([p.tools[1], "--create", "--exit-on-error", "--no-password",
                     "-h", p.admin.host, "-p", str(p.admin.port), "-U", p.admin.user,
                     f"--dbname={maintenance}", self.backup], env=env, pass_fds=fds)
            except ToolError as exc:
                backup, self.backup = self.backup, None  # keep it: it is needed
                raise SatchelError(
                    f"database {p.database}: restoring the backup {self.backup_target} "
                    f"failed: {p.admin.scrub(exc.hint or exc.message)}; restore it with "
                    f"pg_restore --create -d {maintenance} {backup}") from None

    def _remove_backup(self) -> None:
        if self.backup is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.backup)
            self.backup = None
        for d in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        self.made_dirs = []

    def records(self) -> List[Dict[str, Any]]:
        p = self.plan
        rec = dict(self.previous)
        rec.update({"kind": "database", "name": p.database, "host": p.app.host,
                    "port": p.app.port, "user": p.user,
                    "created": bool(self.previous.get("created")) or self.db_created,
                    "role_created": bool(self.previous.get("role_created"))
                    or self.role_created,
                    "version": max([p.state.version] + [s.version for s in p.pending])})
        if self.backup_target:
            rec["backup"] = self.backup_target
        rec.pop("run", None)
        return [rec]
