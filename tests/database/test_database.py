"""The database component and the throwaway cluster, against a real PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bundler.components import BuildContext, database
from bundler.pgcluster import Cluster, alive, pgpass_escape
from bundler.progress import Progress
from bundler.recipe import Bundle, Database, Packages, Recipe
from bundler.staging import Staging
from installer.errors import InputError, SatchelError, ToolError
from installer.restore.pgfacts import HASHTEXT, MD5, table_facts

pytestmark = pytest.mark.postgres

EPOCH = 1700000000
SQL = r"""
CREATE SCHEMA shop;
CREATE TABLE shop.items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                         weight float8, added timestamptz, blob bytea, tags text[]);
CREATE TABLE shop."Orders" (id bigint PRIMARY KEY, item int REFERENCES shop.items(id),
                            note text);
CREATE INDEX orders_item ON shop."Orders" (item);
CREATE TABLE public.empty (x int);
INSERT INTO shop.items (name, price, weight, added, blob, tags)
SELECT 'item ' || g, g * 1.25, g / 3.0, '2024-01-01 00:00+00'::timestamptz + g * interval '1 h',
       decode(md5(g::text), 'hex'), ARRAY['a', NULL, 'c' || g]
FROM generate_series(1, 500) g;
INSERT INTO shop.items (name) VALUES (E'quote '' tab \t newline \n end');
INSERT INTO shop."Orders" SELECT g, 1 + g % 500, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' END
FROM generate_series(1, 2000) g;
"""


def _write_pgpass(path: Path, user: str, password: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"*:*:*:{pgpass_escape(user)}:{pgpass_escape(password)}\n")
    return path


@pytest.fixture
def dumper(pg_cluster: Cluster, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A superuser with a known password and its own pgpass file: (name, password, file)."""
    name, password = f"dumper_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    pg_cluster.run_sql("postgres", f"CREATE ROLE {name} SUPERUSER LOGIN PASSWORD '{password}'")
    try:
        yield name, password, _write_pgpass(tmp_path / "pgpass", name, password)
    finally:
        pg_cluster.run_sql("postgres", f"DROP ROLE {name}")


@pytest.fixture
def app_role(pg_cluster: Cluster) -> Iterator[str]:
    name = f"app_{uuid.uuid4().hex[:8]}"
    pg_cluster.run_sql("postgres", f"CREATE ROLE {name} LOGIN PASSWORD 'app-secret'")
    try:
        yield name
    finally:
        pg_cluster.run_sql("postgres", f"DROP ROLE {name}")


def make_ctx(tmp_path: Path, db: Database) -> BuildContext:
    recipe = Recipe(path=tmp_path / "r.toml",
                    bundle=Bundle("t", "1", "rocky", "9", "x86_64", "T"),
                    packages=Packages(), files=(), secrets=None, database=db)
    root = tmp_path / "staging"
    root.mkdir(exist_ok=True)
    return BuildContext(recipe=recipe, staging=Staging(root), progress=Progress(quiet=True),
                        source_date_epoch=EPOCH, workdir=tmp_path, source_root=Path("/"))


def cluster_db(c: Cluster, names: tuple[str, ...], **kw: Any) -> Database:
    args: dict[str, Any] = dict(host=c.host, port=c.port, user=c.superuser,
                                passfile=c.passfile)
    args.update(kw)
    return Database(names=names, **args)


def restore(c: Cluster, dump: Path) -> str:
    """Restore a .dump.zst as the installer does: `zstd -dc | pg_restore` (one job)."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    c.create_database(name)
    unzstd = subprocess.Popen(["zstd", "-dcq", str(dump)], stdout=subprocess.PIPE)
    try:
        subprocess.run([str(c.bindir / "pg_restore"), "--exit-on-error", "--no-password",
                        "-d", name], stdin=unzstd.stdout,
                       env={**os.environ, **c.env()}, check=True, capture_output=True)
    finally:
        assert unzstd.stdout is not None
        unzstd.stdout.close()
        assert unzstd.wait() == 0
    return name


def unzstd(path: Path) -> bytes:
    return subprocess.run(["zstd", "-dcq", str(path)], capture_output=True,
                          check=True).stdout


def test_dump_restores_with_the_recorded_facts(pg_cluster: Cluster, pg_db: str,
                                               tmp_path: Path, app_role: str) -> None:
    pg_cluster.run_sql(pg_db, SQL)
    ctx = make_ctx(tmp_path, cluster_db(pg_cluster, (pg_db,)))
    database.check(ctx)
    section = database.build(ctx)
    assert section is not None
    (entry,) = section["databases"]
    dump = ctx.staging.root / f"db/{pg_db}.dump.zst"
    assert entry["path"] == f"db/{pg_db}.dump.zst" and entry["format"] == "custom"
    assert entry["compression"] == "zstd" and list(ctx.staging.root.glob("db/*.dump")) == []
    assert entry["size"] == dump.stat().st_size
    assert entry["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert ctx.staging.entries[entry["path"]].sha256 == entry["sha256"]
    assert entry["server_major"] == int(entry["server_version"].split(".")[0])
    assert (entry["encoding"], entry["collation"]) == ("UTF8", "C")
    assert section["checksum_method"] == HASHTEXT
    tables = entry["tables"]
    assert list(tables) == ['public.empty', 'shop."Orders"', "shop.items"]
    assert [t["rows"] for t in tables.values()] == [0, 2000, 501]
    assert tables["public.empty"]["checksum"] == "0" * 32
    archive = unzstd(dump)  # one zstd stream holding an uncompressed custom archive
    assert archive.startswith(b"PGDMP") and len(archive) > entry["size"]

    restored = restore(pg_cluster, dump)
    try:
        conn = pg_cluster.connect(restored)
        md5_before = table_facts(pg_cluster.connect(pg_db), MD5)
        assert table_facts(conn, HASHTEXT) == tables
        assert table_facts(conn, MD5) == md5_before
        pg_cluster.run_sql(restored, "UPDATE shop.items SET weight = 0 WHERE id = 7")
        changed = table_facts(conn)
        assert changed["shop.items"]["rows"] == 501
        assert changed["shop.items"]["checksum"] != tables["shop.items"]["checksum"]
        conn.close()
    finally:
        pg_cluster.drop_database(restored)

    roles = ctx.staging.root / "db/globals.sql"
    assert section["roles"]["path"] == "db/globals.sql"
    assert roles.stat().st_mode & 0o777 == 0o600
    text = roles.read_text()
    assert f"CREATE ROLE {app_role};" in text and "SCRAM-SHA-256$" in text
    assert "CREATE ROLE postgres;" not in text and section["roles"]["excluded"] == ["postgres"]


def test_dump_is_reproducible(pg_cluster: Cluster, pg_db: str, tmp_path: Path) -> None:
    pg_cluster.run_sql(pg_db, SQL)
    db = cluster_db(pg_cluster, (pg_db,))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = database.build(make_ctx(tmp_path / "a", db))
    b = database.build(make_ctx(tmp_path / "b", db))
    assert a == b
    for rel in (f"db/{pg_db}.dump.zst", "db/globals.sql"):
        assert (tmp_path / "a/staging" / rel).read_bytes() == \
            (tmp_path / "b/staging" / rel).read_bytes()
    listing = subprocess.run([str(pg_cluster.bindir / "pg_restore"), "-l"],
                             input=unzstd(tmp_path / "a/staging" / f"db/{pg_db}.dump.zst"),
                             capture_output=True, check=True).stdout.decode()
    assert "Archive created at 2023-11-14 22:13:20 UTC" in listing
    assert "Compression: none" in listing or "Compression: 0" in listing


def test_unreachable_database_fails_before_writing(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        pass_file = _write_pgpass(Path(d) / "pgpass", "postgres", "x")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ctx = make_ctx(tmp_path, Database(names=("demo",), port=port, passfile=pass_file))
        with pytest.raises(InputError) as e:
            database.check(ctx)
        assert str(e.value).startswith(
            f"cannot connect to the database at 127.0.0.1:{port} as postgres: ")
        with pytest.raises(InputError):
            database.build(ctx)
    assert list(ctx.staging.root.iterdir()) == [] and ctx.staging.entries == {}


def test_wrong_password_is_clear_and_secret_free(pg_cluster: Cluster, pg_db: str,
                                                 tmp_path: Path,
                                                 dumper: tuple[str, str, Path]) -> None:
    name, password, _ = dumper
    wrong = f"wrong-{uuid.uuid4().hex}"
    pass_file = _write_pgpass(tmp_path / "bad", name, wrong)
    ctx = make_ctx(tmp_path, cluster_db(pg_cluster, (pg_db,), user=name, passfile=pass_file))
    with pytest.raises(InputError) as e:
        database.check(ctx)
    message = f"{e.value} {e.value.hint}"
    assert "password authentication failed" in message and name in message
    assert wrong not in message and password not in message
    assert list(ctx.staging.root.iterdir()) == []


def test_no_password_on_any_command_line(pg_cluster: Cluster, pg_db: str, tmp_path: Path,
                                         dumper: tuple[str, str, Path],
                                         caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    name, password, pass_file = dumper
    seen: list[list[str]] = []
    real_popen = subprocess.Popen

    def spy(argv: Any, *a: Any, **kw: Any) -> Any:
        seen.append([str(x) for x in argv])
        assert password not in str(kw.get("env", {}).get("PGPASSWORD", ""))
        return real_popen(argv, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", spy)  # run() and DumpStream both use it
    caplog.set_level(logging.DEBUG, logger="satchel")
    ctx = make_ctx(tmp_path, cluster_db(pg_cluster, (pg_db,), user=name, passfile=pass_file))
    database.check(ctx)
    section = database.build(ctx)
    assert section is not None and section["roles"] is not None
    tools = {Path(argv[0]).name for argv in seen}
    assert {"pg_dump", "pg_dumpall"} <= tools
    assert not any(password in arg for argv in seen for arg in argv)
    assert password not in caplog.text
    for rel in ctx.staging.entries:  # the dumper's SCRAM hash, never the password
        assert password.encode() not in (ctx.staging.root / rel).read_bytes()


def test_bad_passfile_and_name_are_input_errors(pg_cluster: Cluster, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_text("*:*:*:postgres:x\n")
    loose.chmod(0o644)
    with pytest.raises(InputError, match="readable by others"):
        database.check(make_ctx(tmp_path, cluster_db(pg_cluster, ("postgres",),
                                                     passfile=loose)))
    with pytest.raises(InputError, match="cannot be a file name"):
        database.check(make_ctx(tmp_path, cluster_db(pg_cluster, ("../x",))))


def test_dump_stream_failure_names_the_tool(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    out = staging.open("db/x.dump")
    stream = database.DumpStream(["sh", "-c", "echo partial; echo boom >&2; exit 3"], {}, out)
    with pytest.raises(ToolError, match="sh failed with exit code 3: boom"):
        stream.wait()
    assert not (tmp_path / "db/x.dump").exists() and staging.entries == {}


def test_dump_stream_compresses_after_the_header(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    data = b"HEAD" + bytes(range(256)) * 20000
    src = tmp_path / "src"
    src.write_bytes(data)
    stream = database.DumpStream(["cat", str(src)], {}, staging.open("db/x.dump.zst"),
                                 header=lambda b: b"head" + b[4:],
                                 compress=database.zstd_argv())
    entry = stream.wait()
    assert unzstd(tmp_path / "db/x.dump.zst") == b"head" + data[4:]
    assert entry.size < len(data) // 10 and staging.entries == {entry.path: entry}
    assert all(p.returncode == 0 for p in stream.procs)


def test_dump_stream_names_the_failing_compressor(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    out = staging.open("db/x.dump.zst")
    quits = ["sh", "-c", "head -c 10 >/dev/null; echo zstd: broken >&2; exit 5"]
    stream = database.DumpStream(["cat", "/dev/zero"], {}, out, compress=quits)
    with pytest.raises(ToolError, match="sh failed with exit code 5: zstd: broken"):
        stream.wait()  # cat, stopped when the compressor quit, is not the one named
    assert [p.returncode for p in stream.procs] == [5, -9]
    assert not (tmp_path / "db/x.dump.zst").exists() and staging.entries == {}


def test_dump_stream_names_the_failing_tool_before_the_compressor(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    out = staging.open("db/x.dump.zst")
    stream = database.DumpStream(["sh", "-c", "echo partial; echo boom >&2; exit 3"], {},
                                 out, compress=database.zstd_argv())
    with pytest.raises(ToolError, match="sh failed with exit code 3: boom"):
        stream.wait()
    assert not (tmp_path / "db/x.dump.zst").exists() and staging.entries == {}


def test_dump_stream_abort_reaps_both_processes(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    out = staging.open("db/x.dump.zst")
    stream = database.DumpStream(["cat", "/dev/urandom"], {}, out,
                                 compress=database.zstd_argv())
    stream.abort()
    assert all(p.returncode is not None for p in stream.procs)
    assert len(stream.procs) == 2 and not any(t.is_alive() for t in stream._threads)
    assert not (tmp_path / "db/x.dump.zst").exists() and staging.entries == {}
    with pytest.raises(ToolError, match="cat failed with exit code -9"):
        stream.wait()  # the tool is named for a kill from outside


def test_missing_zstd_fails_the_check_before_writing(pg_cluster: Cluster, pg_db: str,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    ctx = make_ctx(tmp_path, cluster_db(pg_cluster, (pg_db,)))
    with pytest.raises(InputError, match="required tool not found: zstd") as e:
        database.check(ctx)
    assert "install zstd" in (e.value.hint or "")
    with pytest.raises(InputError, match="zstd"):
        database.build(ctx)
    assert list(ctx.staging.root.rglob("*")) == [] and ctx.staging.entries == {}


def test_a_failing_zstd_fails_the_dump_and_leaves_nothing(
        pg_cluster: Cluster, pg_db: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    pg_cluster.run_sql(pg_db, SQL)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "zstd").write_text("#!/bin/sh\nhead -c 100 >/dev/null\n"
                               "echo 'zstd: out of luck' >&2\nexit 7\n")
    (fake / "zstd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    ctx = make_ctx(tmp_path, cluster_db(pg_cluster, (pg_db,)))
    database.check(ctx)
    with pytest.raises(ToolError, match="zstd failed with exit code 7: zstd: out of luck"):
        database.build(ctx)
    assert [p for p in ctx.staging.root.rglob("*") if not p.is_dir()] == []
    assert ctx.staging.entries == {}


def test_archive_header_layouts() -> None:
    int4 = lambda v: b"\x00" + v.to_bytes(4, "little")  # noqa: E731
    times = b"".join(int4(v) for v in (1, 2, 3, 4, 5, 99, 1))
    v14 = b"PGDMP\x01\x0e\x00\x04\x08\x01" + int4(0xFFFFFFFF) + times + b"rest"
    v15 = b"PGDMP\x01\x0f\x00\x04\x08\x01" + b"\x01" + times + b"rest"
    want = b"".join(int4(v) for v in (20, 13, 22, 14, 10, 123, 0))
    assert database.fix_archive_header(v14, EPOCH) == v14[:16] + want + b"rest"
    assert database.fix_archive_header(v15, EPOCH) == v15[:12] + want + b"rest"
    assert database.fix_archive_header(b"PGDMP\x09\x00", EPOCH) == b"PGDMP\x09\x00"


def test_load_sql_stops_at_the_first_error(pg_cluster: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE ok (x int);\nSELECT nonsense;\nCREATE TABLE after (x int);\n")
    name = f"l_{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(ToolError, match="psql failed with exit code 3"):
            pg_cluster.load_sql(name, [bad])
        assert pg_cluster.run_sql(name, "SELECT count(*) FROM pg_tables "
                                        "WHERE schemaname = 'public'") == [(0,)]
    finally:
        pg_cluster.drop_database(name)


def test_demo_sql_loads_and_dumps(pg_cluster: Cluster, tmp_path: Path) -> None:
    files = sorted((Path(__file__).parents[2] / "payload/demo/sql").glob("*.sql"))
    name = f"demo_{uuid.uuid4().hex[:8]}"
    try:
        pg_cluster.load_sql(name, files)
        section = database.build(make_ctx(tmp_path, cluster_db(pg_cluster, (name,))))
        assert section is not None
        rows = {t: f["rows"] for t, f in section["databases"][0]["tables"].items()}
        assert rows == {"app.hosts": 3, "app.jobs": 40, "app.settings": 3}
    finally:
        pg_cluster.drop_database(name)


def test_cluster_stop_leaves_no_process() -> None:
    with tempfile.TemporaryDirectory(prefix="satchel-pg-", dir="/tmp") as d:
        with Cluster(Path(d)) as c:
            pid = c.pid()
            assert pid is not None and alive(pid)
            assert c.run_sql("postgres", "SELECT 1") == [(1,)]
            assert c.passfile.stat().st_mode & 0o777 == 0o600
            assert c.logfile.parent == c.sockdir
        assert not alive(pid) and c.pid() is None
        c.stop()  # idempotent
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert str(c.datadir) not in out


def test_cluster_refuses_a_directory_postgres_cannot_reach(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs the cluster as another user")
    hidden = Path(tempfile.mkdtemp(dir="/tmp"))  # 0700 root
    try:
        with pytest.raises(InputError, match="cannot reach"):
            Cluster(hidden / "pg").init()
    finally:
        subprocess.run(["rm", "-rf", str(hidden)], check=True)


def test_abort_stops_a_running_dump(pg_cluster: Cluster, pg_db: str, tmp_path: Path) -> None:
    pg_cluster.run_sql(pg_db, "CREATE TABLE big AS SELECT g, md5(g::text) AS t "
                              "FROM generate_series(1, 300000) g")
    ctx = make_ctx(tmp_path, cluster_db(pg_cluster, (pg_db,)))
    pending = database.start(ctx)
    pending.abort()
    with pytest.raises(SatchelError):
        pending.finish()
    assert [p for p in ctx.staging.root.rglob("*") if not p.is_dir()] == []
    assert ctx.staging.entries == {}
