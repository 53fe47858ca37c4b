"""The database step of `install import`: roles, then each dump restored into a new
database that is checked and renamed into place.

Runs on the target: Python 3.9+ and the standard library; psycopg2 is imported
only when a database is restored (a missing one is an InputError naming the
`python3-psycopg2` package). pg_restore comes from `pg_config --bindir`,
/usr/pgsql-*/bin, /usr/lib/postgresql/*/bin or PATH, the oldest one not older
than the dump's pg_dump (the one of the server's own major when it qualifies).

The password (from an answer) goes to psycopg2 as `password=` in the connect
call, and to pg_restore through a 0600 PGPASSFILE made for that one command; it
is never on a command line and never logged (connection errors are scrubbed);
the file is unlinked before pg_restore starts (PGPASSFILE=/dev/fd/N).

RestoreDatabase, one per database of the manifest (`step_id` "database:<name>"):

- prepare: repair what an interrupted earlier run left (a `<name>__satchel_new`
  is dropped; `<name>__satchel_old` without `<name>` is renamed back); when
  `<name>` already holds exactly what the manifest says, nothing more is done
  ("already restored"). Otherwise restore the missing roles of db/globals.sql
  (existing roles are left alone), create `<name>__satchel_new` (template0, the
  source's encoding, collation, ctype; owner as in the source when that role
  exists, else the connecting user), `pg_restore --exit-on-error -j 2` into it
  (a zstd-compressed dump, `db/<name>.dump.zst`, streams from `zstd -dc` into one
  pg_restore job),
  and compare per-table row counts and checksums with the manifest (counts only
  when the checksum method's probe differs on this server). Any failure drops
  the new database and the roles it created: the old database is untouched.
- commit: `<name>` (if any) -> `<name>__satchel_old`, new -> `<name>`.
- undo: drop the restored database, `<name>__satchel_old` -> `<name>`, drop the
  roles created.
- finalize() (after the whole run succeeded): drop `<name>__satchel_old`.

Other sessions on a database are terminated before it is renamed or dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from installer.engine.process import run
from installer.engine.transaction import TransactionElement
from installer.errors import InputError, RefusedError, SatchelError, ToolError
from installer.restore import bundleinfo, checkpoint, pgfacts
from installer.restore.tarstream import decompressed, zstd_tool

log = logging.getLogger("satchel.database")

PSYCOPG2_PACKAGE = "python3-psycopg2"
NEW_SUFFIX = "__satchel_new"
OLD_SUFFIX = "__satchel_old"
MAINTENANCE_DBS = ("postgres", "template1")
NAME_MAX = 63  # NAMEDATALEN - 1: longer identifiers are silently truncated
OBJECT_IN_USE = "55006"
SYSTEM_SCHEMAS = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"


def load_psycopg2() -> Any:
    try:
        import psycopg2
        import psycopg2.sql
    except ImportError:
        raise InputError("restoring a database needs psycopg2, which is not installed",
                         hint=f"install the {PSYCOPG2_PACKAGE} package") from None
    return psycopg2


def temp_name(name: str, suffix: str) -> str:
    """`<name><suffix>`, shortened with a digest of `name` to fit in 63 bytes."""
    full = name + suffix
    if len(full.encode()) <= NAME_MAX:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = name.encode()[:NAME_MAX - len(suffix) - 9].decode("utf-8", "ignore")
    return f"{keep}_{digest}{suffix}"


def read_password_file(path: Any) -> str:
    """The first line of a password file (InputError naming the file)."""
    try:
        with open(os.fspath(path), encoding="utf-8") as f:
            first = f.readline().rstrip("\r\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the database password file: "
                         f"{exc.strerror}") from None
    if not first:
        raise InputError(f"{path}: the first line (the database password) is empty")
    return first


@dataclass(frozen=True)
class ConnParams:
    """Where and as whom to connect; `password` is never shown (repr, messages)."""

    host: str = "localhost"
    port: int = 5432
    user: str = "postgres"
    password: Optional[str] = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port} as {self.user}"

    def scrub(self, text: str) -> str:
        if self.password:
            text = text.replace(self.password, "***")
        return " ".join(text.split())

    def connect(self, dbname: str, autocommit: bool = True) -> Any:
        """A psycopg2 connection, or an InputError naming host, port and user."""
        psycopg2 = load_psycopg2()
        kw: Dict[str, Any] = dict(host=self.host, port=self.port, user=self.user,
                                  dbname=dbname, connect_timeout=10,
                                  application_name="satchel")
        if self.password:
            kw["password"] = self.password
        try:
            conn = psycopg2.connect(**kw)
        except psycopg2.Error as exc:
            reason = self.scrub(str(exc)) or type(exc).__name__
            hint = ("check DB/passwordFile or DB/password" if "password" in reason
                    else "check DB/host, DB/port and that the server accepts connections")
            raise InputError(f"cannot connect to the database server at {self.where}: "
                             f"{reason}", hint=hint) from None
        conn.autocommit = autocommit
        return conn

    @contextlib.contextmanager
    def tool_env(self) -> Iterator[Tuple[Dict[str, str], Tuple[int, ...]]]:
        """(libpq variables, fds to pass) for pg_restore. The password is in a 0600
        file that is unlinked at once and reached as PGPASSFILE=/dev/fd/N, so even
        a kill -9 leaves no copy of it on disk."""
        env = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "satchel-restore"}
        if not self.password:
            yield env, ()
            return
        fd, path = tempfile.mkstemp(prefix="satchel-pgpass-")  # 0600
        try:
            os.unlink(path)
            esc = self.password.replace("\\", "\\\\").replace(":", "\\:")
            os.write(fd, f"*:*:*:*:{esc}\n".encode())
            env["PGPASSFILE"] = f"/dev/fd/{fd}"
            yield env, (fd,)
        finally:
            os.close(fd)


# -- pg_restore -----------------------------------------------------------------

_MAJORS: Dict[Tuple[str, int, int], Optional[int]] = {}  # (binary, inode, mtime) -> major


def _tool_major(binary: Path) -> Optional[int]:
    """The major version `binary --version` reports (asked once per process and
    file: plan and restore both look pg_restore up)."""
    try:
        st = os.stat(binary)
    except OSError:
        return None
    key = (str(binary), st.st_ino, st.st_mtime_ns)
    if key not in _MAJORS:
        try:
            proc = run([binary, "--version"], check=False)
        except ToolError:
            return None
        m = re.search(r"\(PostgreSQL\) (\d+)", proc.stdout or "")
        _MAJORS[key] = int(m.group(1)) if proc.returncode == 0 and m else None
    return _MAJORS[key]


def pg_bindirs(tool: str = "pg_restore") -> Dict[int, Path]:
    """Directories holding `tool`, by its major version (first found wins). A
    `tool` on PATH that is a link to a dispatcher (Debian's pg_wrapper, a Perl
    script that runs one of the versioned bindirs' tools) is only asked when no
    versioned bindir has the tool."""
    candidates: List[Path] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(ToolError):
            proc = run(["pg_config", "--bindir"], check=False)
            if proc.returncode == 0 and proc.stdout.strip():
                candidates.append(Path(proc.stdout.strip()))
    candidates += sorted(Path("/usr").glob("pgsql-*/bin"))  # PGDG on EL
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"))  # Debian
    on_path = shutil.which(tool)
    if on_path:
        candidates.append(Path(on_path).parent)
    found: Dict[int, Path] = {}
    for d in dict.fromkeys(candidates):
        binary = d / tool
        if not binary.is_file():
            continue
        if found and os.path.basename(os.path.realpath(binary)) != tool:
            continue  # a dispatcher to one of the tools found already
        major = _tool_major(binary)
        if major is not None:
            found.setdefault(major, d)
    return found


def pick_major(dirs: Dict[int, Path], minimum: int,
               prefer: Optional[int] = None) -> Optional[int]:
    """The major version to use of `dirs` (from pg_bindirs): `prefer` when it is one
    not older than `minimum`, else the oldest not older than it; None if none is."""
    fit = sorted(m for m in dirs if m >= minimum)
    if not fit:
        return None
    return prefer if prefer in fit else fit[0]


def majors_found(dirs: Dict[int, Path]) -> str:
    """The installed majors, for an error message: "13, 15" or "none"."""
    return ", ".join(str(m) for m in sorted(dirs)) or "none"


def pg_restore_path(dump_major: int, server_major: Optional[int] = None) -> Path:
    """The pg_restore to use: not older than the dump's pg_dump (RefusedError if none)."""
    dirs = pg_bindirs()
    major = pick_major(dirs, dump_major, server_major)
    if major is None:
        raise RefusedError(f"the dump was made by pg_dump {dump_major}, but no pg_restore of "
                           f"that version or newer is installed (have: {majors_found(dirs)})",
                           hint=f"install the PostgreSQL {dump_major} client "
                                f"(postgresql{dump_major} or postgresql-client-{dump_major})")
    return dirs[major] / "pg_restore"


# -- roles ------------------------------------------------------------------------

_IDENT = r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_ROLE_STMT = re.compile(r"^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE)\s+" + _IDENT, re.I)


def _unquote(ident: str) -> str:
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def split_sql(text: str) -> List[str]:
    """Statements of a pg_dumpall script: psql meta-commands and comments dropped;
    quotes respected."""
    out: List[str] = []
    buf: List[str] = []
    quote = ""
    for line in text.splitlines(keepends=True):
        if not quote and not "".join(buf).strip() and line.lstrip().startswith("\\"):
            continue  # \restrict, \unrestrict, \connect
        i = 0
        while i < len(line):
            c = line[i]
            if quote:
                buf.append(c)
                if c == quote:
                    quote = ""
            elif c in ("'", '"'):
                quote = c
                buf.append(c)
            elif line.startswith("--", i):
                break
            elif c == ";":
                stmt = "".join(buf).strip()
                if stmt:
                    out.append(stmt)
                buf = []
            else:
                buf.append(c)
            i += 1
        if not quote and i < len(line):
            buf.append("\n")
    rest = "".join(buf).strip()
    if rest:
        out.append(rest)
    return out


def roles_in(text: str) -> List[str]:
    """Role names created by a roles script, in order."""
    names = []
    for stmt in split_sql(text):
        m = _ROLE_STMT.match(stmt)
        if m and stmt.upper().startswith("CREATE ROLE"):
            names.append(_unquote(m.group(1)))
    return names


def existing_roles(conn: Any) -> List[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_catalog.pg_roles")
        return [r[0] for r in cur.fetchall()]


def restore_roles(conn: Any, text: str) -> List[str]:
    """Run the roles script for the roles that do not exist yet; returns them.

    One transaction: CREATE/ALTER/COMMENT ON ROLE of existing roles are skipped (the
    target's roles are left as they are). Every statement runs in a savepoint: a
    failed CREATE ROLE fails the restore, anything else (memberships, settings) is
    a warning.
    """
    have = set(existing_roles(conn))
    created: List[str] = []
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            for stmt in split_sql(text):
                m = _ROLE_STMT.match(stmt)
                creating = bool(m) and stmt.upper().startswith("CREATE ROLE")
                if m and _unquote(m.group(1)) in have:
                    continue
                cur.execute("SAVEPOINT satchel_role")
                try:
                    cur.execute(stmt)
                except Exception as exc:
                    if creating:
                        raise
                    cur.execute("ROLLBACK TO SAVEPOINT satchel_role")
                    log.warning("roles: skipped %s: %s", stmt.split("\n")[0][:80],
                                " ".join(str(exc).split()))
                cur.execute("RELEASE SAVEPOINT satchel_role")
                if m and creating:
                    created.append(_unquote(m.group(1)))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = True
    if created:
        log.info("roles created: %s", ", ".join(created))
    return created


# -- the server -------------------------------------------------------------------

class Server:
    """An autocommit connection to a maintenance database of the target server."""

    def __init__(self, params: ConnParams) -> None:
        self.params = params
        self.psycopg2 = load_psycopg2()
        error: Optional[InputError] = None
        for db in MAINTENANCE_DBS:
            try:
                self.conn = params.connect(db)
                break
            except InputError as exc:
                error = error or exc
                if "does not exist" not in exc.message:
                    raise
        else:
            assert error is not None
            raise error

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, sql: Any, args: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall()) if cur.description else []

    def ident(self, name: str) -> Any:
        return self.psycopg2.sql.Identifier(name)

    def sql(self, text: str, *names: str) -> Any:
        return self.psycopg2.sql.SQL(text).format(*(self.ident(n) for n in names))

    @property
    def major(self) -> int:
        return int(self.query("SELECT current_setting('server_version_num')::int")[0][0]) \
            // 10000

    def privileges(self) -> Tuple[bool, bool, bool]:
        """(superuser, createdb, createrole) of the connecting user."""
        row = self.query("SELECT rolsuper, rolcreatedb, rolcreaterole FROM "
                         "pg_catalog.pg_roles WHERE rolname = current_user")[0]
        return bool(row[0]), bool(row[1]), bool(row[2])

    def exists(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s",
                               (name,)))

    def oid(self, name: str) -> Optional[int]:
        rows = self.query("SELECT oid FROM pg_catalog.pg_database WHERE datname = %s", (name,))
        return int(rows[0][0]) if rows else None

    def role_exists(self, role: str) -> bool:
        return bool(self.query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s",
                               (role,)))

    def terminate(self, name: str) -> None:
        self.query("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
                   " WHERE datname = %s AND pid <> pg_catalog.pg_backend_pid()", (name,))

    def _in_use_retry(self, name: str, stmt: Any) -> None:
        """Run `stmt` on database `name`, terminating its sessions first (retried while
        terminated sessions are still going away)."""
        deadline = time.monotonic() + 15
        while True:
            self.terminate(name)
            try:
                self.query(stmt)
                return
            except self.psycopg2.Error as exc:
                if exc.pgcode != OBJECT_IN_USE or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def rename(self, old: str, new: str) -> None:
        log.info("database %s -> %s", old, new)
        self._in_use_retry(old, self.sql("ALTER DATABASE {} RENAME TO {}", old, new))

    def drop(self, name: str) -> None:
        if self.exists(name):
            log.info("drop database %s", name)
            self._in_use_retry(name, self.sql("DROP DATABASE IF EXISTS {}", name))

    def create(self, name: str, owner: str, entry: Dict[str, Any]) -> None:
        stmt = self.sql("CREATE DATABASE {} OWNER {} TEMPLATE template0", name, owner)
        lit = self.psycopg2.sql.Literal
        for opt, key in (("ENCODING", "encoding"), ("LC_COLLATE", "collation"),
                         ("LC_CTYPE", "ctype")):
            if entry.get(key):
                stmt = self.psycopg2.sql.SQL("{} {} {}").format(
                    stmt, self.psycopg2.sql.SQL(opt), lit(entry[key]))
        log.info("create database %s (owner %s)", name, owner)
        self.query(stmt)

    def is_empty(self, name: str) -> bool:
        """No relations, functions or types of its own outside the system schemas."""
        conn = self.params.connect(name)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN "
                    "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE "
                    f"{SYSTEM_SCHEMAS}) + (SELECT count(*) FROM pg_catalog.pg_proc p "
                    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE "
                    f"{SYSTEM_SCHEMAS})")
                return int(cur.fetchone()[0]) == 0
        finally:
            conn.close()

    def facts(self, name: str, method: str) -> Tuple[Dict[str, Dict[str, Any]], str]:
        """(table facts, method probe) of database `name`."""
        conn = self.params.connect(name, autocommit=False)
        try:
            probe = pgfacts.method_probe(conn, method)
            return pgfacts.table_facts(conn, method), probe
        finally:
            conn.close()


def compare(entry: Dict[str, Any], tables: Dict[str, Dict[str, Any]], probe: str) -> List[str]:
    """What differs between the manifest's tables and `tables` (empty: the same).
    Checksums count only when the probe matches the dump's."""
    want: Dict[str, Dict[str, Any]] = entry.get("tables", {})
    with_sums = probe == entry.get("checksum_probe")
    problems = []
    for name in sorted(set(want) | set(tables)):
        w, h = want.get(name), tables.get(name)
        if w is None:
            problems.append(f"{name}: not in the dump")
        elif h is None:
            problems.append(f"{name}: missing")
        elif w["rows"] != h["rows"]:
            problems.append(f"{name}: {h['rows']} rows, the dump has {w['rows']}")
        elif with_sums and w["checksum"] != h["checksum"]:
            problems.append(f"{name}: checksum {h['checksum']}, the dump has {w['checksum']}")
    return problems


def inspect(server: Server, entry: Dict[str, Any]) -> str:
    """What the target holds for `entry`: "absent", "empty", "identical" or "differs"
    (the database left by an interrupted commit counts as the database)."""
    name = entry["name"]
    current = name
    if not server.exists(name):
        old = temp_name(name, OLD_SUFFIX)
        if not server.exists(old):
            return "absent"
        current = old
    if server.is_empty(current):
        return "empty"
    tables, probe = server.facts(current, entry["checksum_method"])
    return "differs" if compare(entry, tables, probe) else "identical"


def check_compression(entry: Dict[str, Any]) -> None:
    """A dump this installer can read: no compression (pg_dump's own) or "zstd" with
    the zstd tool at hand; a RefusedError or InputError otherwise."""
    compression = entry.get("compression")
    if not compression:
        return
    if compression != "zstd":
        raise RefusedError(f"{Path(entry['path']).name}: unknown dump compression "
                           f"{compression!r}", hint="this bundle needs a newer installer")
    zstd_tool("the database dumps")


@contextlib.contextmanager
def dump_source(dump: Path, entry: Dict[str, Any]) -> Iterator[Tuple[List[Path], Any]]:
    """What pg_restore reads for the manifest's database `entry`: ([dump], DEVNULL)
    for a plain custom archive, or ([], zstd's stdout) for a zstd-compressed one
    (see tarstream.decompressed: a damaged frame fails even if pg_restore, reading a
    truncated stream, did not notice)."""
    check_compression(entry)
    if not entry.get("compression"):
        yield [dump], subprocess.DEVNULL
        return
    log.info("+ zstd -dcq %s |", dump)
    with decompressed(dump, "the database dumps") as stream:
        yield [], stream


# -- the transaction element ----------------------------------------------------------

class RestoreDatabase(TransactionElement):
    """Restore one database of the bundle (see the module docstring)."""

    def __init__(self, bundle: Path, db_entry: Dict[str, Any], conn_params: ConnParams,
                 replace: bool = False, step_id: Optional[str] = None) -> None:
        self.bundle = bundle
        self.entry = db_entry
        self.params = conn_params
        self.replace = replace
        self.name: str = db_entry["name"]
        self.step_id = step_id if step_id is not None else f"database:{self.name}"
        self.new = temp_name(self.name, NEW_SUFFIX)
        self.old = temp_name(self.name, OLD_SUFFIX)
        self.already = False
        self.created_new = False
        self.moved_old = False  # name -> old done (or found done by an interrupted run)
        self.moved_new = False
        self.roles_created: List[str] = []
        self.how = ""
        self.finalized = False
        self.earlier: Dict[str, Any] = {}  # what a killed attempt journaled (begin)
        self._begun = False

    def describe(self) -> str:
        return f"restore database {self.name}"

    def _server(self) -> Server:
        return Server(self.params)

    def prepare(self) -> None:
        started = time.monotonic()
        earlier = self.txn.journal.started(self.step_id) if self.step_id else None
        self.earlier = dict(earlier) if isinstance(earlier, dict) else {}
        with self._server() as srv:
            self._repair(srv)
            if srv.exists(self.name):
                tables, probe = srv.facts(self.name, self.entry["checksum_method"])
                if not compare(self.entry, tables, probe):
                    self.already = True
                    self.moved_old = srv.exists(self.old)  # an interrupted commit's
                    log.info("database %s: already restored, identical to the bundle",
                             self.name)
                    return
                if srv.exists(self.old):
                    raise RefusedError(f"database {self.name}: {self.old} is in the way",
                                       hint=f"a previous import left it; drop or rename "
                                            f"{self.old} and run again")
                if not self.replace and not srv.is_empty(self.name):
                    raise RefusedError(f"database {self.name} exists and is not empty",
                                       hint="use --replace-db (IMPORT/replaceDb=true)")
                self.how = "replaced"
            else:
                self.how = "restored"
            self.roles_created = self._roles(srv)
            checkpoint.reached("database.restore")
            owner = self.entry.get("owner")
            if not owner or not srv.role_exists(owner):
                owner = self.params.user
            srv.create(self.new, owner, self.entry)
            self.created_new = True
            self._pg_restore(srv.major)
            tables, probe = srv.facts(self.new, self.entry["checksum_method"])
            problems = compare(self.entry, tables, probe)
            if problems:
                shown = "; ".join(problems[:5]) + (
                    f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
                raise SatchelError(f"database {self.name}: the restored data does not match "
                                   f"the bundle's manifest: {shown}",
                                   hint="the old database was not touched")
            log.info("database %s: restored and checked %d tables in %.2fs", self.name,
                     len(tables), time.monotonic() - started)

    def _repair(self, srv: Server) -> None:
        """Undo what an interrupted earlier run left half done."""
        if srv.exists(self.new):
            log.info("database %s: dropping %s left by an interrupted run", self.name,
                     self.new)
            srv.drop(self.new)
        if not srv.exists(self.name) and srv.exists(self.old):
            log.info("database %s: putting back %s left by an interrupted run", self.name,
                     self.old)
            srv.rename(self.old, self.name)

    def _roles(self, srv: Server) -> List[str]:
        """Create the bundle's missing roles; first, the journal learns which (with how
        the database will be restored), so a rerun after a kill records them too."""
        roles = bundleinfo.component(self.bundle, "database").get("roles") or {}
        text = ""
        if roles.get("path"):
            text = (bundleinfo.bundle_dir(self.bundle) / roles["path"]).read_text(
                encoding="utf-8")
        missing = [r for r in roles_in(text) if not srv.role_exists(r)]
        if self.step_id:
            earlier = [r for r in self.earlier.get("roles", []) if r not in missing]
            self.txn.journal.begin(self.step_id, {"how": self.earlier.get("how", self.how),
                                                  "roles": earlier + missing})
            self._begun = True
        return restore_roles(srv.conn, text) if text else []

    def _pg_restore(self, server_major: int) -> None:
        dump = bundleinfo.bundle_dir(self.bundle) / self.entry["path"]
        tool = pg_restore_path(int(self.entry.get("pg_dump_major") or 0), server_major)
        # A zstd dump, or one split over volumes (a pipe, restore/volview.py), is read
        # as a stream by one job: no uncompressed copy on the target's disk.
        jobs = ["-j", "2"] if dump.is_file() and not self.entry.get("compression") else []
        with self.params.tool_env() as (env, fds), dump_source(dump, self.entry) as source:
            where, stdin = source
            try:
                run([tool, "--exit-on-error", "--no-password", *jobs,
                     "-h", self.params.host, "-p", str(self.params.port),
                     "-U", self.params.user, f"--dbname={self.new}", *where], env=env,
                    pass_fds=fds, stdin=stdin)
            except ToolError as exc:
                raise ToolError(f"database {self.name}: pg_restore failed: "
                                f"{self.params.scrub(exc.hint or exc.message)}",
                                hint="the old database was not touched") from None

    def commit(self) -> None:
        if self.already:
            return
        with self._server() as srv:
            if srv.exists(self.name):
                srv.rename(self.name, self.old)
                self.moved_old = True
            srv.rename(self.new, self.name)
            self.moved_new = True
            self.created_new = False

    def abort(self) -> None:
        """After a failed prepare or commit: back to how it was."""
        with self._server() as srv:
            if self.moved_new:
                srv.drop(self.name)
            if self.created_new or self.moved_new:
                srv.drop(self.new)
            if self.moved_old and not srv.exists(self.name):
                srv.rename(self.old, self.name)
            self._drop_roles(srv)
        self._forget_attempt()

    def _forget_attempt(self) -> None:
        """This attempt is reverted: the journal goes back to what an interrupted
        earlier attempt left (its roles are still there)."""
        if self._begun and self.step_id:
            self.txn.journal.abandon(self.step_id, self.earlier or None)
            self._begun = False

    def undo(self) -> None:
        if self.already and not self.moved_old:
            return
        with self._server() as srv:
            if self.moved_old or self.moved_new:
                srv.drop(self.name)
            if self.moved_old:
                srv.rename(self.old, self.name)
            # The roles of a killed earlier attempt too: after the undo, no journal
            # entry remembers them.
            self.roles_created = [r for r in self.earlier.get("roles", [])
                                  if r not in self.roles_created] + self.roles_created
            self._drop_roles(srv)
        self.moved_old = self.moved_new = False

    def _drop_roles(self, srv: Server) -> None:
        for role in reversed(self.roles_created):
            try:
                srv.query(srv.sql("DROP ROLE IF EXISTS {}", role))
            except srv.psycopg2.Error as exc:
                log.warning("role %s created by this import could not be dropped: %s",
                            role, " ".join(str(exc).split()))
        self.roles_created = []

    def finalize(self) -> None:
        """The run succeeded: drop the replaced database kept for undo."""
        if self.moved_old and not self.finalized:
            with self._server() as srv:
                srv.drop(self.old)
        self.finalized = True

    def records(self) -> List[Dict[str, Any]]:
        """The database's record; after a killed attempt, with what that attempt did
        (its roles; "restored" stays restored when it already renamed the database
        into place)."""
        how = self.earlier.get("how") or self.how
        roles = [r for r in self.earlier.get("roles", []) if r not in self.roles_created]
        if self.already and not self.earlier:
            return []
        return [{"kind": "database", "name": self.name, "how": how,
                 "host": self.params.host, "port": self.params.port,
                 "tables": len(self.entry.get("tables", {})),
                 "roles_created": roles + list(self.roles_created)}]


def conn_params(env: Any) -> ConnParams:
    """Where and as whom to connect, from the answers DB/host, DB/port, DB/user and
    DB/passwordFile (preferred) or DB/password."""
    port = env["DB/port"]
    if not 0 < port < 65536:
        raise InputError(f"DB/port: {port} is not a TCP port (1-65535)")
    password: Optional[str] = None
    if env["DB/passwordFile"] is not None:
        password = read_password_file(env["DB/passwordFile"])
    elif env["DB/password"]:
        password = env["DB/password"]
    return ConnParams(host=env["DB/host"], port=port, user=env["DB/user"], password=password)


def row_counts(params: ConnParams, name: str) -> Dict[str, int]:
    """{"schema.table": rows} of every user table of database `name` (one count per
    table: cheaper than the restore's checksums, for the audit after the commit)."""
    conn = params.connect(name, autocommit=False)
    try:
        counts = {}
        with conn.cursor() as cur:
            for table in pgfacts.table_names(conn):
                cur.execute(f"SELECT count(*) FROM ONLY {table}")  # quoted by format('%I')
                counts[table] = int(cur.fetchone()[0])
        conn.rollback()
        return counts
    finally:
        conn.close()


def count_problems(entry: Dict[str, Any], counts: Dict[str, int]) -> List[str]:
    """How `counts` differ from the manifest's row counts of database `entry`."""
    want = {t: int(v["rows"]) for t, v in entry.get("tables", {}).items()}
    problems = []
    for table in sorted(set(want) | set(counts)):
        if table not in counts:
            problems.append(f"{table}: missing")
        elif table not in want:
            problems.append(f"{table}: not in the bundle")
        elif counts[table] != want[table]:
            problems.append(f"{table}: {counts[table]} rows, the bundle has {want[table]}")
    return problems


def drop_leftover_old(params: ConnParams, name: str) -> None:
    """After a successful run that resumed an interrupted one: the replaced database
    that run kept for undo is no longer needed."""
    with Server(params) as srv:
        srv.drop(temp_name(name, OLD_SUFFIX))
