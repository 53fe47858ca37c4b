"""The database component: a `pg_dump` custom-format archive per database, plus roles.

`check(ctx)` finds zstd and connects to every named database before anything is
written (psycopg2; the password only through the recipe's pgpass file) and picks the
pg_dump that matches the server's major version. `build(ctx)` writes, through the
staging directory (hashed while written, never held in memory):

- `db/<name>.dump.zst`: `pg_dump --format=custom --compress=0` streamed from its
  stdout through `zstd -T0 -1` (a zstd stream whose content is the archive: much
  faster than pg_dump's own zlib, and smaller). pg_dump reads the snapshot that our
  REPEATABLE READ transaction exported, and in that same transaction
  `installer.restore.pgfacts.table_facts` counts and checksums every table while the
  dump runs, so the recorded facts describe exactly what the dump holds.
- `db/globals.sql` (mode 0600: it holds the roles' SCRAM password hashes, which a
  restore needs): `pg_dumpall --roles-only` without the bootstrap superuser, whose
  password belongs to the target's own cluster.

Reproducibility: a custom archive embeds its creation time; the header is rewritten
to SOURCE_DATE_EPOCH as it streams, before zstd, whose output does not depend on its
thread count (see ZSTD_FLAGS), so two dumps of the same database (same data, same
catalog OIDs, same zstd version) are byte-identical. pg_dumpall's `\\restrict` key
(15.14+) is random; it is replaced by a key derived from the file's own content,
which data in the file cannot predict. Dumps of a live database that changes between
builds naturally differ; that is the database entry of the manifest, nothing else.

`start(ctx)` returns a `PendingDump` whose work runs in a thread, so the pipeline
can archive files meanwhile; `finish()` returns the manifest section, `abort()`
stops it. The section (see pgfacts for the checksum methods; a database's `size` and
`sha256` are those of the compressed file; an entry without "compression" is an older
bundle's `db/<name>.dump`, compressed by pg_dump itself):

    {"dump_format": "custom", "server_version": "15.20 (Debian ...)", "server_major": 15,
     "pg_dump_major": 15, "checksum_method": "hashtext-rowsum-v1", "checksum_probe": "..",
     "roles": {"path": "db/globals.sql", "size": .., "sha256": .., "mode": "0600",
               "excluded": ["postgres"]} | null,
     "databases": [{"name": "demo", "path": "db/demo.dump.zst", "format": "custom",
                    "compression": "zstd", "size": .., "sha256": ..,
                    "server_version": .., "server_major": 15,
                    "encoding": "UTF8", "collation": "C", "ctype": "C", "owner": "app",
                    "pg_dump_major": 15, "checksum_method": .., "checksum_probe": ..,
                    "tables": {"app.hosts": {"rows": 3, "checksum": "<32 hex>"}}}]}
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shlex
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Optional

import psycopg2
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ

from bundler.components import BuildContext
from bundler.pgcluster import pg_bindirs
from bundler.recipe import Database
from bundler.run import check_tool, run
from bundler.staging import CHUNK, Entry, HashingWriter, Staging
from installer.errors import InputError, SatchelError, ToolError
from installer.restore.database import majors_found, pick_major
from installer.restore.pgfacts import choose_method, database_facts, method_probe, table_facts

log = logging.getLogger("satchel")

# Database names become file names in db/: keep them plain (no '/', no '=', no '..').
DB_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
ROLES_PATH = "db/globals.sql"
# The archive's compression, ours: level 1 is several times faster than pg_dump's own
# zlib and smaller. Every -T from 1 up (-T0: one worker per core) gives the same bytes,
# so the file does not depend on the machine; only --single-thread differs.
ZSTD_FLAGS = ("-q", "-c", "-T0", "-1")
ZSTD_HINT = "install zstd (apt-get install zstd): it compresses the database dumps"


def zstd_argv() -> list[str]:
    """The compressor of the dumps, or an InputError naming zstd."""
    return [check_tool("zstd", hint=ZSTD_HINT), *ZSTD_FLAGS]


def connect(db: Database, dbname: str) -> Any:
    """A psycopg2 connection, or an InputError naming host, port and user."""
    params: dict[str, Any] = dict(host=db.host, port=db.port, user=db.user, dbname=dbname,
                                  connect_timeout=10, application_name="satchel")
    if db.passfile is not None:
        params["passfile"] = str(db.passfile)
    try:
        return psycopg2.connect(**params)
    except psycopg2.Error as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"cannot connect to the database at {db.host}:{db.port} as "
                         f"{db.user}: {reason}",
                         hint="check [database] in the recipe and the pgpass file") from None


def pg_dump_bindir(server_major: int) -> Path:
    """The bindir whose pg_dump matches the server: the same major, else the oldest newer."""
    dirs = pg_bindirs()
    major = pick_major(dirs, server_major)
    if major is None:
        raise InputError(f"the server is PostgreSQL {server_major} but no pg_dump of that "
                         f"version or newer is installed (have: {majors_found(dirs)})",
                         hint=f"install postgresql-client-{server_major}")
    if major != server_major:
        log.warning("no pg_dump %d; using pg_dump %d (restore needs PostgreSQL %d+)",
                    server_major, major, major)
    return dirs[major]


def _check_passfile(db: Database) -> None:
    if db.passfile is None:
        return
    try:
        st = db.passfile.stat()
    except OSError as e:
        raise InputError(f"{db.passfile}: cannot read the pgpass file: {e.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{db.passfile}: the pgpass file is readable by others "
                         "(libpq ignores it)", hint=f"chmod 0600 {db.passfile}")


def check(ctx: BuildContext) -> None:
    """Fail before anything is written: names, pgpass file, connection, pg_dump, roles."""
    db = ctx.recipe.database
    if db is None:
        return
    zstd_argv()
    for name in db.names:
        if not DB_NAME_RE.match(name):
            raise InputError(f"database.names: {name!r} cannot be a file name in the "
                             "bundle", hint="letters, digits, '_', '.', '-'")
    _check_passfile(db)
    for name in db.names:
        conn = connect(db, name)
        try:
            major = database_facts(conn)["server_major"]
            with conn.cursor() as cur:
                cur.execute("SELECT rolsuper FROM pg_catalog.pg_roles "
                            "WHERE rolname = current_user")
                row = cur.fetchone()
        finally:
            conn.close()
        pg_dump_bindir(major)
        if db.roles and not (row and row[0]):
            raise InputError(f"database: dumping roles needs a superuser, and {db.user} "
                             "is not one", hint="connect as a superuser or set roles = false")


def build(ctx: BuildContext) -> Optional[dict[str, Any]]:
    if ctx.recipe.database is None:
        return None
    if threading.current_thread() is not threading.main_thread():
        return start(ctx).finish()  # the pipeline runs us beside other steps: no progress
    with ctx.progress.step(f"dump {len(ctx.recipe.database.names)} database(s)"):
        return start(ctx).finish()


def start(ctx: BuildContext) -> PendingDump:
    """Start the dumps in a thread (for a pipeline that archives files meanwhile)."""
    if ctx.recipe.database is None:
        raise ValueError("the recipe has no [database]")
    return PendingDump(ctx.recipe.database, ctx.staging, ctx.source_date_epoch)


class PendingDump:
    """The dumps, running in a thread; `finish()` waits and returns the manifest section."""

    def __init__(self, db: Database, staging: Staging, source_date_epoch: int) -> None:
        self.db = db
        self.staging = staging
        self.epoch = source_date_epoch
        self._error: Optional[BaseException] = None
        self._result: dict[str, Any] = {}
        self._current: Optional[DumpStream] = None
        self._roles: Optional[_Roles] = None
        self._aborted = False
        self._thread = threading.Thread(target=self._work, name="pg_dump", daemon=True)
        self._thread.start()

    def finish(self) -> dict[str, Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def abort(self) -> None:
        """Stop a running pg_dump (the build failed elsewhere); never raises."""
        self._aborted = True
        current = self._current
        if current is not None:
            current.kill()  # its wait() in our thread then fails and discards the file
        self._thread.join()

    def _work(self) -> None:
        try:
            self._result = self._dump_all()
        except BaseException as e:  # re-raised by finish() in the caller's thread
            self._error = e

    def _dump_all(self) -> dict[str, Any]:
        db = self.db
        section: dict[str, Any] = {"dump_format": "custom", "roles": None, "databases": []}
        try:
            for name in db.names:
                if self._aborted:
                    raise SatchelError("database dump aborted")
                facts = self._dump_one(name)
                section["databases"].append(facts)
        except BaseException:
            if self._roles is not None:  # a failed dump leaves nothing: not the roles either
                self._roles.join()
                self.staging.discard(ROLES_PATH)
            raise
        first = section["databases"][0]
        section["server_version"] = first["server_version"]
        section["server_major"] = first["server_major"]
        section["pg_dump_major"] = first["pg_dump_major"]
        section["checksum_method"] = first["checksum_method"]
        section["checksum_probe"] = first["checksum_probe"]
        if self._roles is not None:
            section["roles"] = self._roles.result()
        if self._aborted:
            raise SatchelError("database dump aborted")
        return section

    def _dump_one(self, name: str) -> dict[str, Any]:
        db = self.db
        started = time.monotonic()
        conn = connect(db, name)
        try:
            conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_export_snapshot()")
                snapshot = cur.fetchone()[0]
            facts = database_facts(conn)
            bindir = pg_dump_bindir(facts["server_major"])
            argv = [bindir / "pg_dump", "--format=custom", "--compress=0", "--no-password",
                    f"--snapshot={snapshot}", "-h", db.host, "-p", str(db.port),
                    "-U", db.user, f"--dbname={name}"]
            compress = zstd_argv()
            if self.db.roles and self._roles is None:  # pg_dumpall beside the first dump
                self._roles = _Roles(db, bindir, self.staging, name)
            out = self.staging.open(f"db/{name}.dump.zst")
            self._current = DumpStream(argv, tool_env(db), out,
                                       header=lambda head: fix_archive_header(head, self.epoch),
                                       compress=compress)
            if self._aborted:  # abort() came before _current was set
                self._current.kill()
            try:
                method = choose_method(conn)
                probe = method_probe(conn, method)
                tables = table_facts(conn, method)  # in the snapshot, while pg_dump runs
            except BaseException:
                self._current.abort()
                raise
            entry = self._current.wait()
            self._current = None
        finally:
            conn.close()
        log.info("dumped %s: %d bytes, %d tables in %.2fs", name, entry.size, len(tables),
                 time.monotonic() - started)
        return {"name": name, "path": entry.path, "format": "custom", "compression": "zstd",
                "size": entry.size, "sha256": entry.sha256, **facts,
                "pg_dump_major": _major_of(bindir), "checksum_method": method,
                "checksum_probe": probe, "tables": tables}


def _major_of(bindir: Path) -> int:
    return next(m for m, d in pg_bindirs().items() if d == bindir)


class _Roles(threading.Thread):
    """dump_roles() in a thread; result() waits and returns its entry or raises."""

    def __init__(self, db: Database, bindir: Path, staging: Staging, dbname: str) -> None:
        super().__init__(name="pg_dumpall", daemon=True)
        self._args = (db, bindir, staging, dbname)
        self._entry: dict[str, Any] = {}
        self._error: Optional[BaseException] = None
        self.start()

    def run(self) -> None:
        try:
            self._entry = dump_roles(*self._args)
        except BaseException as e:
            self._error = e

    def result(self) -> dict[str, Any]:
        self.join()
        if self._error is not None:
            raise self._error
        return self._entry


def dump_roles(db: Database, bindir: Path, staging: Staging, dbname: str) -> dict[str, Any]:
    """`pg_dumpall --roles-only` into db/globals.sql (0600), minus the bootstrap superuser."""
    conn = connect(db, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT quote_ident(rolname) FROM pg_catalog.pg_roles WHERE oid = 10")
            bootstrap = cur.fetchone()[0]
    finally:
        conn.close()
    proc = run([bindir / "pg_dumpall", "--roles-only", "--no-password", "-h", db.host,
                "-p", str(db.port), "-U", db.user, f"--database={dbname}"],
               env=tool_env(db), capture=True)
    text = filter_roles(proc.stdout, bootstrap)
    with staging.open(ROLES_PATH, mode=0o600) as out:
        out.write(text)
    entry: Entry = out.close()
    return {"path": entry.path, "size": entry.size, "sha256": entry.sha256, "mode": "0600",
            "excluded": [bootstrap]}


def filter_roles(sql: bytes, bootstrap: str) -> bytes:
    """Drop the bootstrap superuser's CREATE/ALTER ROLE lines; make the \\restrict key
    a digest of the rest, so the same roles give the same bytes."""
    ident = re.escape(bootstrap.encode())
    drop = re.compile(rb"^(CREATE ROLE " + ident + rb";|ALTER ROLE " + ident + rb" )")
    lines = [ln for ln in sql.splitlines(keepends=True) if not drop.match(ln)]
    text = b"".join(lines)
    m = re.search(rb"^\\restrict ([A-Za-z0-9]+)$", text, re.MULTILINE)
    if m:
        old = m.group(1)
        key = hashlib.sha256(text.replace(old, b"")).hexdigest().encode()
        text = text.replace(old, key)
    return text


def tool_env(db: Database) -> dict[str, str]:
    """libpq variables for pg_dump/pg_dumpall: a passfile, never a password; UTC so
    the archive's clock fields are what fix_archive_header expects."""
    env = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "satchel", "TZ": "UTC", "PGTZ": "UTC"}
    if db.passfile is not None:
        env["PGPASSFILE"] = str(db.passfile)
    return env


class DumpStream:
    """A tool writing to its stdout, streamed by threads into a staging file.

    The one place the builder starts processes outside bundler.run.run, following
    its rules: argv lists, `+ cmd` logged at debug, LANG=C.UTF-8, the tool's stdin
    closed, and a failure names the command and its exit code. `header` may rewrite
    the first bytes of the tool's output. With `compress` (the argv of a filter from
    stdin to stdout: zstd), the bytes go tool -> pump (header) -> compress -> pump ->
    file, else tool -> pump (header) -> file. Each stderr goes to an unlinked
    temporary file (a pipe could fill up and stall the process).
    """

    def __init__(self, argv: Sequence[Any], env: dict[str, str], out: HashingWriter,
                 header: Optional[Callable[[bytes], bytes]] = None,
                 compress: Optional[Sequence[Any]] = None) -> None:
        self.out = out
        self._error: Optional[BaseException] = None
        self._killed = False  # kill() from outside: the tool's failure is the one to name
        self._compress_quit = False  # the compressor stopped reading: its failure counts
        self.procs: list[subprocess.Popen[bytes]] = []  # the compressor first, if any
        self._names: list[str] = []
        self._stderrs: list[IO[bytes]] = []
        self._details: list[str] = []  # what each process said on stderr, after wait()
        self._threads: list[threading.Thread] = []
        full_env = dict(os.environ)
        full_env["LANG"] = "C.UTF-8"
        full_env.pop("LC_ALL", None)
        full_env.update(env)
        try:
            compressor = None
            if compress is not None:  # first: the tool's output has a reader at once
                compressor = self._start(compress, full_env, subprocess.PIPE)
            self.proc = self._start(argv, full_env, subprocess.DEVNULL)
        except BaseException:
            self._stop()
            out.discard()
            raise
        assert self.proc.stdout is not None
        if compressor is None:
            self._spawn(self.proc.stdout, out, header)
        else:
            assert compressor.stdin is not None and compressor.stdout is not None
            self._spawn(self.proc.stdout, compressor.stdin, header)
            self._spawn(compressor.stdout, out, None)

    def _start(self, argv: Sequence[Any], env: dict[str, str],
               stdin: int) -> subprocess.Popen[bytes]:
        cmd = [str(a) for a in argv]
        log.debug("+ %s", shlex.join(cmd))
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self._stderrs.append(stderr)
        try:
            proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                    stderr=stderr)
        except OSError as e:
            raise ToolError(f"cannot run {cmd[0]}: {e.strerror}") from e
        self.procs.append(proc)
        self._names.append(Path(cmd[0]).name)
        for pipe in (proc.stdout, proc.stdin):  # fewer wake-ups: 1 MiB pipes
            if pipe is not None:
                with contextlib.suppress(OSError):
                    fcntl.fcntl(pipe.fileno(), 1031, CHUNK)  # F_SETPIPE_SZ
        return proc

    def _spawn(self, src: IO[bytes], dst: Any,
               header: Optional[Callable[[bytes], bytes]]) -> None:
        thread = threading.Thread(target=self._pump, args=(src, dst, header), name="pump",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _pump(self, src: IO[bytes], dst: Any,
              header: Optional[Callable[[bytes], bytes]]) -> None:
        """Copy src to dst, `header` applied to the first chunk; on an error stop every
        process, so that none waits on a pipe no one drains any more."""
        try:
            first = True
            while chunk := src.read(CHUNK):
                if first and header is not None:
                    chunk = header(chunk)
                first = False
                dst.write(chunk)
        except BrokenPipeError:  # the compressor quit: wait() names it
            self._compress_quit = True
            self._kill()
        except BaseException as e:  # a full disk: stop the processes, report in wait()
            if self._error is None:
                self._error = e
            self._kill()
        finally:
            src.close()
            if dst is not self.out:  # the compressor's stdin: it sees the end
                with contextlib.suppress(OSError):
                    dst.close()

    def wait(self) -> Entry:
        """Wait for the processes; the staging entry, or the failure (file discarded)."""
        for thread in self._threads:
            thread.join()
        codes = [proc.wait() for proc in self.procs]
        for stderr in self._stderrs:
            stderr.seek(0)
            self._details.append(stderr.read().decode("utf-8", "replace").strip())
            stderr.close()
        self._stderrs = []
        failed = self._failed(codes)
        if self._error is not None or failed is not None:
            self.out.discard()
            if self._error is not None:
                raise self._error
            assert failed is not None
            lines = self._details[failed].splitlines()
            tail = lines[-1] if lines else "no output"
            raise ToolError(f"{self._names[failed]} failed with exit code {codes[failed]}: "
                            f"{tail}", hint="run with --debug to see the full command")
        return self.out.close()

    def _failed(self, codes: list[int]) -> Optional[int]:
        """Which process's failure to report (an index in procs), if any: the tool's,
        unless the compressor quit first and so the tool was stopped."""
        tool = len(self.procs) - 1
        if codes[tool] != 0 and (self._killed or not self._compress_quit):
            return tool
        others = [i for i, code in enumerate(codes) if code != 0 and i != tool]
        if others:
            return others[0]
        return tool if codes[tool] != 0 else None

    def _kill(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(OSError):
                proc.kill()

    def kill(self) -> None:
        """Kill the processes (from another thread); the thread in wait() sees the
        tool fail."""
        self._killed = True
        self._kill()

    def _stop(self) -> None:
        """After a failed start: kill and reap what started, close what was opened."""
        self._kill()
        for proc in self.procs:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            proc.wait()
        for stderr in self._stderrs:
            stderr.close()
        self._stderrs = []

    def abort(self) -> None:
        """Kill the processes, wait for them and discard the file; never raises."""
        self.kill()
        with contextlib.suppress(Exception):
            self.wait()


def fix_archive_header(head: bytes, epoch: int) -> bytes:
    """Set a custom-format archive's creation time to `epoch` (UTC).

    The header is "PGDMP", version (major, minor, rev), intSize, offSize, format,
    the compression (an int before archive 1.15, a byte from 1.15), then the
    creation time as seven ints (sec, min, hour, mday, mon 0-11, year-1900,
    isdst), each a sign byte and intSize little-endian bytes. An unknown layout is
    left as it is.
    """
    if len(head) < 11 or head[:5] != b"PGDMP":
        return head
    version, int_size = (head[5], head[6]), head[8]
    if version > (1, 16) or int_size not in (4, 8):
        log.debug("archive version %d.%d: creation time left as is", *version)
        return head
    pos = 11 + (1 if version >= (1, 15) else 1 + int_size)
    end = pos + 7 * (1 + int_size)
    if len(head) < end:
        return head
    t = time.gmtime(epoch)
    fields = (t.tm_sec, t.tm_min, t.tm_hour, t.tm_mday, t.tm_mon - 1, t.tm_year - 1900, 0)
    packed = b"".join(b"\x00" + struct.pack("<Q", v)[:int_size] for v in fields)
    return head[:pos] + packed + head[end:]
