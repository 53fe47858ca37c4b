"""The import's database step against the real throwaway cluster: a bundle built by
the builder from a recipe with only a [database] section, then `install import`
through the engine (all importer plugins run; the others have nothing to do)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.output import OutputFormat
from bundler.pgcluster import Cluster
from installer import engine
from installer.errors import InputError, RefusedError, ToolError
from installer.restore import database as restore_db
from installer.restore.pgfacts import table_facts

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]

SQL = """
CREATE SCHEMA shop AUTHORIZATION {role};
SET ROLE {role};
CREATE TABLE shop.items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2),
                         added timestamptz, tags text[]);
CREATE TABLE shop."Orders" (id bigint PRIMARY KEY, item int REFERENCES shop.items(id));
CREATE TABLE public.empty (x int);
INSERT INTO shop.items (name, price, added, tags)
SELECT 'item ' || g, g * 1.25, '2024-01-01 00:00+00'::timestamptz + g * interval '1 h',
       ARRAY['a', NULL, 'c' || g] FROM generate_series(1, 300) g;
INSERT INTO shop."Orders" SELECT g, 1 + g % 300 FROM generate_series(1, 1000) g;
"""
# Big enough that pg_restore runs for a while (the kill -9 test).
BIG_SQL = """
CREATE TABLE big (id bigint, payload text);
INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1500000) g;
ALTER TABLE big ADD PRIMARY KEY (id);
"""

RECIPE = """
[bundle]
name = "dbtest"
version = "1.0"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
source_date_epoch = 1767225600

[database]
names = ["{name}"]
roles = {roles}
"""


@dataclasses.dataclass
class Built:
    path: Path
    manifest: dict[str, Any]
    name: str  # the database (dropped on the cluster after the build)
    role: str  # its owner (dropped too)

    @property
    def entry(self) -> dict[str, Any]:
        return dict(self.manifest["components"]["database"]["databases"][0])


def _password(cluster: Cluster) -> str:
    line = cluster.passfile.read_text().splitlines()[0]
    return line.split(":", 4)[4].replace("\\:", ":").replace("\\\\", "\\")


def _build(cluster: Cluster, out: Path, name: str, roles: bool) -> dict[str, Any]:
    text = RECIPE.format(name=name, roles="true" if roles else "false")
    recipe = recipes.parse(out.parent / "recipe.toml", text)
    assert recipe.database is not None
    recipe = dataclasses.replace(recipe, database=dataclasses.replace(
        recipe.database, host=cluster.host, port=cluster.port, user=cluster.superuser,
        passfile=cluster.passfile))
    result = build(recipe, out, OutputFormat("dir"), force=True)
    return json.loads((result.path / "manifest.json").read_text())


def _make_source(cluster: Cluster, name: str, role: str, extra: str = "") -> None:
    cluster.run_sql("postgres", f"CREATE ROLE {role} LOGIN PASSWORD 'app-secret'")
    cluster.create_database(name, owner=role)
    cluster.run_sql(name, SQL.format(role=role) + extra)


def _drop_all(cluster: Cluster, name: str, *roles: str) -> None:
    for db in (name, restore_db.temp_name(name, restore_db.NEW_SUFFIX),
               restore_db.temp_name(name, restore_db.OLD_SUFFIX)):
        cluster.drop_database(db)
    for role in roles:
        cluster.run_sql("postgres", f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module")
def built(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, Built]]:
    """Bundles of one source database: "main" (with roles), "noroles" (without), and
    "big" (another database, 1.5M rows). The sources are dropped after the build."""
    out: dict[str, Built] = {}
    base = tmp_path_factory.mktemp("bundles")
    hexid = uuid.uuid4().hex[:8]
    name, role = f"srcdb_{hexid}", f"app_{hexid}"
    _make_source(pg_cluster, name, role)
    for kind, roles in (("main", True), ("noroles", False)):
        (base / kind).mkdir()
        m = _build(pg_cluster, base / kind / "bundle", name, roles)
        out[kind] = Built(base / kind / "bundle", m, name, role)
    _drop_all(pg_cluster, name, role)
    big, big_role = f"bigdb_{hexid}", f"big_{hexid}"
    _make_source(pg_cluster, big, big_role, BIG_SQL)
    (base / "big").mkdir()
    out["big"] = Built(base / "big" / "bundle",
                       _build(pg_cluster, base / "big" / "bundle", big, True), big, big_role)
    _drop_all(pg_cluster, big, big_role)
    try:
        yield out
    finally:
        for b in out.values():
            _drop_all(pg_cluster, b.name, b.role)


@pytest.fixture
def clean(pg_cluster: Cluster, built: dict[str, Built]) -> Iterator[None]:
    """No database or role of the bundles before and after each test."""
    for b in built.values():
        _drop_all(pg_cluster, b.name, b.role)
    yield
    for b in built.values():
        _drop_all(pg_cluster, b.name, b.role)


def _root(tmp: Path) -> Path:
    root = tmp / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('NAME="RHEL"\nID=rhel\nVERSION_ID=9\n')
    return root


@pytest.fixture
def pwfile(pg_cluster: Cluster, tmp_path: Path) -> Path:
    p = tmp_path / "dbpass"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_password(pg_cluster) + "\n")
    return p


def _settings(cluster: Cluster, pwfile: Optional[Path] = None, **extra: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"DB/host": cluster.host, "DB/port": str(cluster.port),
                         "DB/user": cluster.superuser}
    if pwfile is not None:
        s["DB/passwordFile"] = str(pwfile)
    s.update(extra)
    return s


def _import(root: Path, b: Built, settings: dict[str, Any]) -> tuple[int, str]:
    err = io.StringIO()
    code = engine.run("import", root=root, bundle=b.path, groups=("core", "importer"),
                      settings=settings, unattended=True, stdout=err, stderr=err)
    return code, err.getvalue()


def _databases(cluster: Cluster) -> dict[str, int]:
    return {r[0]: r[1] for r in cluster.run_sql(
        "postgres", "SELECT datname, oid::int FROM pg_database WHERE NOT datistemplate")}


def _facts(cluster: Cluster, name: str) -> dict[str, Any]:
    conn = cluster.connect(name, autocommit=False)
    try:
        return table_facts(conn)
    finally:
        conn.close()


def _leftovers(cluster: Cluster) -> list[str]:
    return [d for d in _databases(cluster) if "__satchel_" in d]


def _logs(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*.log"))


def test_fresh_restore_then_a_second_import_changes_nothing(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path) -> None:
    b = built["main"]
    root = _root(tmp_path)
    code, out = _import(root, b, _settings(pg_cluster, pwfile))
    assert code == 0, out
    assert _facts(pg_cluster, b.name) == b.entry["tables"]
    assert _leftovers(pg_cluster) == []
    owner = pg_cluster.run_sql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                           f"WHERE datname = '{b.name}'")[0][0]
    assert owner == b.role == b.entry["owner"]  # the role came from db/globals.sql
    state = json.loads((root / "var/lib/satchel/state.json").read_text())
    rec = state["actions"]["import"]["databases"][b.name]
    assert rec["how"] == "restored" and rec["roles_created"] == [b.role]
    assert "databases restored" in out
    oid = _databases(pg_cluster)[b.name]

    code, out = _import(root, b, _settings(pg_cluster, pwfile))
    assert code == 0, out
    assert "already identical to the bundle, nothing changed" in out
    assert "nothing changed: the target already matched the bundle" in out
    assert _databases(pg_cluster)[b.name] == oid  # not recreated
    assert _facts(pg_cluster, b.name) == b.entry["tables"]
    assert _leftovers(pg_cluster) == []


def test_existing_database_refused_then_replaced_old_kept_until_commit(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = built["main"]
    root = _root(tmp_path)
    pg_cluster.create_database(b.name)
    pg_cluster.run_sql(b.name, "CREATE TABLE old (v text); INSERT INTO old VALUES ('keep me')")
    old_facts, old_oid = _facts(pg_cluster, b.name), _databases(pg_cluster)[b.name]

    code, out = _import(root, b, _settings(pg_cluster, pwfile))
    assert code == 3, out
    assert "is not empty and differs from the bundle" in out and "--replace-db" in out
    assert _databases(pg_cluster)[b.name] == old_oid and _leftovers(pg_cluster) == []

    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, out = _import(root, b, _settings(pg_cluster, pwfile, **{"IMPORT/replaceDb": "true"}))
    assert code == 1, out
    assert "rolled back" in out
    assert _databases(pg_cluster)[b.name] == old_oid  # the very same database came back
    assert _facts(pg_cluster, b.name) == old_facts
    assert _leftovers(pg_cluster) == []
    assert not pg_cluster.run_sql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = "
                                              f"'{b.role}'")  # the role it made is gone

    monkeypatch.delenv("SATCHEL_FAIL_AT")
    code, out = _import(root, b, _settings(pg_cluster, pwfile, **{"IMPORT/replaceDb": "true"}))
    assert code == 0, out
    assert _facts(pg_cluster, b.name) == b.entry["tables"]
    assert _leftovers(pg_cluster) == []  # the old copy was dropped after the commit


@pytest.mark.parametrize("stage", ["packages", "misc"])
def test_a_failure_while_restoring_ahead_drops_the_new_database_and_roles(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    # The restore starts in early_misc, in the background: a failure in packages (while
    # it runs) or at misc (before its commit) must abort it like any other element.
    b = built["big"]
    root = _root(tmp_path)
    pg_cluster.create_database(b.name)
    pg_cluster.run_sql(b.name, "CREATE TABLE old (v text); INSERT INTO old VALUES ('keep me')")
    old_facts, old_oid = _facts(pg_cluster, b.name), _databases(pg_cluster)[b.name]
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    code, out = _import(root, b, _settings(pg_cluster, pwfile, **{"IMPORT/replaceDb": "true"}))
    assert code == 1, out
    assert f"failure injected at stage {stage}" in out
    assert _databases(pg_cluster)[b.name] == old_oid and _facts(pg_cluster, b.name) == old_facts
    assert _leftovers(pg_cluster) == []
    assert not pg_cluster.run_sql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = "
                                              f"'{b.role}'")
    assert "prepare ahead restore database" in _logs(root)
    journal = root / "var/lib/satchel/journal/import.json"
    assert not journal.exists() or "database:" not in journal.read_text()


def test_a_failing_pg_restore_leaves_the_old_database_untouched(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path) -> None:
    # A bundle without roles whose tables belong to a role the target lacks: pg_restore
    # --exit-on-error stops at ALTER ... OWNER TO.
    b = built["noroles"]
    assert b.manifest["components"]["database"]["roles"] is None
    root = _root(tmp_path)
    pg_cluster.create_database(b.name)
    pg_cluster.run_sql(b.name, "CREATE TABLE old (v text); INSERT INTO old VALUES ('keep me')")
    old_facts, old_oid = _facts(pg_cluster, b.name), _databases(pg_cluster)[b.name]
    code, out = _import(root, b, _settings(pg_cluster, pwfile, **{"IMPORT/replaceDb": "true"}))
    assert code == 1, out
    assert "pg_restore failed" in out and f'role "{b.role}" does not exist' in out
    assert _databases(pg_cluster)[b.name] == old_oid
    assert _facts(pg_cluster, b.name) == old_facts
    assert _leftovers(pg_cluster) == []


def test_unreachable_or_wrong_password_refused_at_validation(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, tmp_path: Path) -> None:
    b = built["main"]
    root = _root(tmp_path)
    before = _databases(pg_cluster)
    secret = f"wrong-{uuid.uuid4().hex}"
    code, out = _import(root, b, _settings(pg_cluster, **{"DB/password": secret}))
    assert code == 2, out
    assert f"cannot connect to the database server at {pg_cluster.host}:{pg_cluster.port} " \
           f"as postgres" in out and "password authentication failed" in out
    bad = tmp_path / "badpass"
    bad.write_text(secret + "\n")
    code, out2 = _import(root, b, _settings(pg_cluster, bad))
    assert code == 2, out2
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    code, out3 = _import(root, b, _settings(pg_cluster, **{"DB/port": str(closed)}))
    assert code == 2, out3
    assert f"127.0.0.1:{closed}" in out3 and "check DB/host, DB/port" in out3
    code, out4 = _import(root, b, _settings(pg_cluster, **{"DB/port": "70000"}))
    assert code == 2 and "DB/port: 70000 is not a TCP port" in out4
    assert _databases(pg_cluster) == before
    for text in (out, out2, out3, _logs(root)):
        assert secret not in text
    assert not (root / "var/lib/satchel/state.json").exists()


def _pg_restore_running(cluster: Cluster, name: str) -> bool:
    return bool(cluster.run_sql("postgres", (
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'satchel-restore' "
        f"AND datname = '{restore_db.temp_name(name, restore_db.NEW_SUFFIX)}' "
        "AND query ILIKE 'COPY%'")))


def test_kill_9_during_pg_restore_then_a_rerun_ends_restored(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path) -> None:
    b = built["big"]
    root = _root(tmp_path)
    argv = [sys.executable, "-m", "installer", "import", "--bundle", str(b.path),
            "--root", str(root), "--unattended"]
    for k, v in _settings(pg_cluster, pwfile).items():
        argv += ["--set", f"{k}={v}"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _pg_restore_running(pg_cluster, b.name):
            assert proc.poll() is None, "the import ended before pg_restore copied data"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the installer and its pg_restore
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert restore_db.temp_name(b.name, restore_db.NEW_SUFFIX) in _databases(pg_cluster)
    assert b.name not in _databases(pg_cluster)
    assert not list(Path(tempfile.gettempdir()).glob("satchel-pgpass-*"))  # unlinked early

    code, out = _import(root, b, _settings(pg_cluster, pwfile))
    assert code == 0, out
    assert "dropping" in _logs(root) and "left by an interrupted run" in _logs(root)
    assert _facts(pg_cluster, b.name) == b.entry["tables"]
    assert _leftovers(pg_cluster) == []
    assert not pg_cluster.run_sql("postgres", "SELECT pid FROM pg_stat_activity WHERE "
                                              "application_name LIKE 'satchel%'")


def test_checksum_mismatch_drops_the_new_database(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path) -> None:
    # The manifest vouches for SHA256SUMS, not for itself (unsigned bundle): a manifest
    # whose checksum of one table differs from what the dump holds still verifies.
    b = built["main"]
    copy = tmp_path / "bundle"
    shutil.copytree(b.path, copy)
    m = json.loads((copy / "manifest.json").read_text())
    entry = m["components"]["database"]["databases"][0]
    entry["tables"]["shop.items"]["checksum"] = "0" * 32
    (copy / "manifest.json").write_text(json.dumps(m))
    root = _root(tmp_path)
    code, out = _import(root, Built(copy, m, b.name, b.role), _settings(pg_cluster, pwfile))
    assert code == 1, out
    assert "the restored data does not match the bundle's manifest: shop.items: checksum" in out
    assert b.name not in _databases(pg_cluster) and _leftovers(pg_cluster) == []
    assert not pg_cluster.run_sql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = "
                                              f"'{b.role}'")


def test_an_existing_empty_database_is_replaced_without_replace_db(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path) -> None:
    b = built["main"]
    root = _root(tmp_path)
    pg_cluster.create_database(b.name)
    code, out = _import(root, b, _settings(pg_cluster, pwfile))
    assert code == 0, out
    assert _facts(pg_cluster, b.name) == b.entry["tables"] and _leftovers(pg_cluster) == []


def test_a_commit_interrupted_between_the_renames_is_repaired(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, pwfile: Path,
        tmp_path: Path) -> None:
    # What a kill between "name -> old" and "new -> name" leaves: no <name>, the old
    # database as <name>__satchel_old, the restored one as <name>__satchel_new.
    b = built["main"]
    root = _root(tmp_path)
    old = restore_db.temp_name(b.name, restore_db.OLD_SUFFIX)
    new = restore_db.temp_name(b.name, restore_db.NEW_SUFFIX)
    pg_cluster.create_database(old)
    pg_cluster.run_sql(old, "CREATE TABLE old (v text); INSERT INTO old VALUES ('keep me')")
    pg_cluster.create_database(new)
    code, out = _import(root, b, _settings(pg_cluster, pwfile))
    assert code == 3, out  # validation sees the old database: not replaced without the flag
    assert b.name not in _databases(pg_cluster)  # and validation changed nothing
    assert sorted(_leftovers(pg_cluster)) == sorted([new, old])
    code, out = _import(root, b, _settings(pg_cluster, pwfile, **{"IMPORT/replaceDb": "true"}))
    assert code == 0, out
    assert _facts(pg_cluster, b.name) == b.entry["tables"] and _leftovers(pg_cluster) == []


def test_the_password_is_asked_hidden_unless_unattended(
        pg_cluster: Cluster, built: dict[str, Built], clean: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    b = built["main"]
    root = _root(tmp_path)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")  # no password from elsewhere
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return _password(pg_cluster)

    monkeypatch.setattr("getpass.getpass", fake_getpass)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = io.StringIO()
    code = engine.run("import", root=root, bundle=b.path, groups=("core", "importer"),
                      settings=_settings(pg_cluster), unattended=False,
                      stdin=Tty("yes\n"), stdout=out, stderr=out)
    assert code == 0, out.getvalue()
    assert asked == ["Password of PostgreSQL user postgres: "]
    assert _password(pg_cluster) not in out.getvalue() + _logs(root)
    assert _facts(pg_cluster, b.name) == b.entry["tables"]

    _drop_all(pg_cluster, b.name, b.role)
    code, text = _import(_root(tmp_path / "again"), b, _settings(pg_cluster))
    assert code == 2 and asked == [asked[0]], text  # unattended: not asked, refused
    assert "no password supplied" in text


def test_roles_script_parsing() -> None:
    text = ("--\n-- Roles\n--\n\\restrict abc\nSET default_transaction_read_only = off;\n"
            "CREATE ROLE app;\nALTER ROLE app WITH LOGIN PASSWORD 'a;b''--c';\n"
            'CREATE ROLE "Odd ""x""";\nCOMMENT ON ROLE app IS \'x; y\';\n'
            "GRANT app TO \"Odd \"\"x\"\"\" GRANTED BY postgres;\n\\unrestrict abc\n")
    assert restore_db.split_sql(text) == [
        "SET default_transaction_read_only = off", "CREATE ROLE app",
        "ALTER ROLE app WITH LOGIN PASSWORD 'a;b''--c'", 'CREATE ROLE "Odd ""x"""',
        "COMMENT ON ROLE app IS 'x; y'", 'GRANT app TO "Odd ""x""" GRANTED BY postgres']
    assert restore_db.roles_in(text) == ["app", 'Odd "x"']
    assert restore_db.temp_name("a" * 63, "__satchel_new").endswith("__satchel_new")
    assert len(restore_db.temp_name("a" * 63, "__satchel_new")) == 63
    assert "secret" not in repr(restore_db.ConnParams(password="secret"))


def test_a_missing_psycopg2_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(InputError) as e:
        restore_db.ConnParams().connect("postgres")
    assert e.value.hint == "install the python3-psycopg2 package"


def test_a_zstd_dump_streams_and_a_damaged_one_is_an_error(tmp_path: Path) -> None:
    # The reader (pg_restore in real use) may stop before the end of the stream: the
    # rest is still read, so zstd's checksum of the whole frame decides.
    data = b"".join(b"row %d\n" % i for i in range(200000))
    (tmp_path / "d").write_bytes(data)
    subprocess.run(["zstd", "-q", str(tmp_path / "d"), "-o", str(tmp_path / "d.zst")],
                   check=True)
    zstd = {"path": "db/d.zst", "compression": "zstd"}
    with restore_db.dump_source(tmp_path / "d.zst", zstd) as (args, stdin):
        assert args == []
        head = subprocess.run(["head", "-c", "12"], stdin=stdin, capture_output=True)
    assert head.stdout == data[:12]
    damaged = bytearray((tmp_path / "d.zst").read_bytes())
    damaged[-6] ^= 0xFF  # in the last block
    (tmp_path / "bad.zst").write_bytes(bytes(damaged))
    with pytest.raises(ToolError, match=r"zstd failed .* on bad\.zst"), \
            restore_db.dump_source(tmp_path / "bad.zst", zstd) as (args, stdin):
        subprocess.run(["head", "-c", "12"], stdin=stdin, capture_output=True)
    with pytest.raises(RefusedError, match=r"d\.zst: unknown dump compression 'lz4'"):
        restore_db.check_compression({"path": "db/d.zst", "compression": "lz4"})
    with pytest.raises(RefusedError, match="unknown dump compression 'lz4'"), \
            restore_db.dump_source(tmp_path / "d.zst", {"path": "db/d.zst",
                                                        "compression": "lz4"}):
        pass
