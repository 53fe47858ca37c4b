"""The snapshot round trip with a database (the proof of issue 5): a node made with
dnf from the demo packages, lived in (an edited %config file, unpackaged files
owned by its own user, a key pair) and with data in a real PostgreSQL database,
is captured by `build.py snapshot` and brought back by `install import` into a
fresh root and a fresh database. The package set, every file (content, mode,
owner by name) and every table (row count and a checksum computed here, not by
satchel) are the same. And a snapshot whose database is unreachable is refused
before anything is written."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bundler import recipe as recipes
from bundler.dnf import installed
from bundler.output import OutputFormat
from bundler.pgcluster import Cluster
from bundler.progress import Progress
from bundler.snapshot import snapshot
from installer.restore import database as restore_db
from tests.builder.test_snapshot import RECIPE, _base_root, node  # noqa: F401 - a fixture
from tests.rpmfixtures import demo_rpms  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.rpm, pytest.mark.root]

DATABASE = """
[database]
names = ["{name}"]
host = "{host}"
port = {port}
user = "{user}"
passfile = "{passfile}"
roles = true
"""

SQL = """
CREATE TABLE public.empty (x int);
CREATE SCHEMA inventory AUTHORIZATION {role};
SET ROLE {role};
CREATE TABLE inventory.nodes (id serial PRIMARY KEY, name text NOT NULL UNIQUE,
                              mac macaddr, ip inet, added timestamptz, attrs jsonb);
CREATE TABLE inventory."Jobs" (id bigint PRIMARY KEY, node int REFERENCES inventory.nodes(id),
                               state text, payload bytea, weight double precision,
                               tags text[]);
INSERT INTO inventory.nodes (name, mac, ip, added, attrs)
SELECT 'node' || g, ('02:00:00:00:' || lpad(to_hex(g / 256), 2, '0') || ':'
                     || lpad(to_hex(g % 256), 2, '0'))::macaddr,
       ('10.0.' || g / 256 || '.' || g % 256)::inet,
       '2026-01-01 00:00+00'::timestamptz + g * interval '1 min',
       jsonb_build_object('rack', g % 7, 'note', 'é ' || g)
FROM generate_series(1, 500) g;
INSERT INTO inventory."Jobs"
SELECT g, 1 + g % 500, (ARRAY['queued', 'done', NULL])[1 + g % 3],
       decode(md5(g::text), 'hex'), g / 3.0, ARRAY['a' || g, NULL]
FROM generate_series(1, 3000) g;
"""

# Each user table: its row count and the md5 of its rows' text, in text order.
TABLES = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables
WHERE schemaname <> 'information_schema' AND schemaname NOT LIKE 'pg\\_%' ORDER BY 1
"""
TABLE = "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) " \
        "FROM ONLY {} AS t"


def _tables(cluster: Cluster, dbname: str) -> dict[str, tuple[int, str]]:
    conn = cluster.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'; SET extra_float_digits = 1")
            cur.execute(TABLES)
            names = [r[0] for r in cur.fetchall()]
            out = {}
            for name in names:
                cur.execute(TABLE.format(name))  # a name quoted by the server's format()
                rows, digest = cur.fetchone()
                out[name] = (int(rows), str(digest))
            return out
    finally:
        conn.close()


def _oid(cluster: Cluster, dbname: str) -> int:
    rows = cluster.run_sql("postgres", f"SELECT oid::int FROM pg_database "
                                       f"WHERE datname = '{dbname}'")
    return int(rows[0][0]) if rows else 0


def _password_file(cluster: Cluster, path: Path) -> Path:
    """The superuser's password, first line of a 0600 file (DB/passwordFile)."""
    line = cluster.passfile.read_text().splitlines()[0]
    password = line.split(":", 4)[4].replace("\\:", ":").replace("\\\\", "\\")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return path


def _recipe(tmp_path: Path, rpms: Path, **db: Any) -> recipes.Recipe:
    path = tmp_path / "node.toml"
    path.write_text(RECIPE.format(rpms=rpms) + DATABASE.format(**db))
    return recipes.load(path)


def _owner_names(root: Path) -> dict[int, str]:
    out = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        out.setdefault(int(f[2]), f[0])
    return out


def _file_facts(root: Path, rels: list[str]) -> dict[str, tuple[object, ...]]:
    """Content, mode and owner (by the root's own names) of each file."""
    users = _owner_names(root)
    out = {}
    for rel in rels:
        p = root / rel
        st = os.lstat(p)
        out[rel] = (oct(st.st_mode), users.get(st.st_uid, st.st_uid),
                    hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
    return out


@pytest.mark.postgres
def test_snapshot_round_trip_with_database(node: Path, tmp_path: Path,  # noqa: F811
                                           demo_rpms: Path, pg_cluster: Cluster,  # noqa: F811
                                           pg_db: str) -> None:
    # The node's own application user, at a uid the target gives to nobody.
    with open(node / "etc/passwd", "a") as f:
        f.write("demoapp:x:4711:4711::/srv/demo:/sbin/nologin\n")
    with open(node / "etc/group", "a") as f:
        f.write("demoapp:x:4711:\n")
    os.chown(node / "srv/demo/records.db", 4711, 4711)
    os.chown(node / "etc/demo/local.conf", 4711, 0)
    role = f"{pg_db}_app"
    pg_cluster.run_sql("postgres", f"CREATE ROLE {role} NOLOGIN")
    source_copy = f"{pg_db}_source"
    try:
        pg_cluster.run_sql(pg_db, SQL.format(role=role))
        before = _tables(pg_cluster, pg_db)
        assert before["inventory.nodes"][0] == 500 and before['inventory."Jobs"'][0] == 3000

        recipe = _recipe(tmp_path, demo_rpms, name=pg_db, host=pg_cluster.host,
                         port=pg_cluster.port, user=pg_cluster.superuser,
                         passfile=pg_cluster.passfile)
        bundle = snapshot(recipe, node, tmp_path / "bundle", OutputFormat.dir,
                          progress=Progress(quiet=True)).path
        manifest = json.loads((bundle / "manifest.json").read_text())
        (entry,) = manifest["components"]["database"]["databases"]
        assert entry["name"] == pg_db and (bundle / entry["path"]).is_file()
        assert {t: f["rows"] for t, f in entry["tables"].items()} == \
            {t: rows for t, (rows, _) in before.items()}

        # The source database steps aside (kept, renamed, to compare with); the
        # import creates a fresh one of the captured name on the same server.
        pg_cluster.run_sql("postgres", f'ALTER DATABASE "{pg_db}" RENAME TO "{source_copy}"')
        source_oid = _oid(pg_cluster, source_copy)
        target = _base_root(tmp_path / "target", demo_rpms)
        with open(target / "etc/passwd", "a") as f:
            f.write("demoapp:x:5000:5000::/srv/demo:/sbin/nologin\n")
        with open(target / "etc/group", "a") as f:
            f.write("demoapp:x:5000:\n")
        password = _password_file(pg_cluster, tmp_path / "dbpass")
        # The system python3 of this test host has no psycopg2; the venv's has
        # (on a real target the import installs python3-psycopg2 from the bundle).
        r = subprocess.run(
            [sys.executable, str(bundle / "install"), "import", "--root", str(target),
             "--unattended", "--set", f"DB/host={pg_cluster.host}",
             "--set", f"DB/port={pg_cluster.port}", "--set", f"DB/user={pg_cluster.superuser}",
             "--set", f"DB/passwordFile={password}"],
            capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr

        assert installed(target) == installed(node)
        rels = ["etc/demo/app.conf", "etc/demo/local.conf", "srv/demo/records.db",
                "etc/pki/demo/node.key", "etc/pki/demo/node.crt", "usr/bin/demo-app"]
        assert _file_facts(target, rels) == _file_facts(node, rels)
        assert os.lstat(target / "srv/demo/records.db").st_uid == 5000  # mapped by name

        restored_oid = _oid(pg_cluster, pg_db)
        assert restored_oid and restored_oid != source_oid  # a new database
        assert _tables(pg_cluster, pg_db) == _tables(pg_cluster, source_copy) == before
        owner = pg_cluster.run_sql(pg_db, "SELECT nspowner::regrole::text FROM "
                                          "pg_namespace WHERE nspname = 'inventory'")
        assert owner == [(role,)]
        leftovers = pg_cluster.run_sql("postgres", "SELECT datname FROM pg_database "
                                                   "WHERE datname LIKE '%\\_\\_satchel\\_%'")
        assert leftovers == []
    finally:
        for name in (pg_db, source_copy, restore_db.temp_name(pg_db, restore_db.NEW_SUFFIX),
                     restore_db.temp_name(pg_db, restore_db.OLD_SUFFIX)):
            pg_cluster.drop_database(name)
        pg_cluster.run_sql("postgres", f"DROP ROLE IF EXISTS {role}")


def test_cli_snapshot_refuses_an_unreachable_database(node: Path, tmp_path: Path,  # noqa: F811
                                                      demo_rpms: Path) -> None:  # noqa: F811
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    passfile = tmp_path / "pgpass"
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("*:*:*:postgres:unused\n")
    path = tmp_path / "node.toml"
    path.write_text(RECIPE.format(rpms=demo_rpms) + DATABASE.format(
        name="engine", host="127.0.0.1", port=port, user="postgres", passfile=passfile))
    out_dir = tmp_path / "media"
    out_dir.mkdir()
    r = subprocess.run([sys.executable, str(REPO / "build.py"), "snapshot", str(path),
                        "--source-root", str(node), "--out", str(out_dir / "node")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"cannot connect to the database at 127.0.0.1:{port} as postgres" in r.stderr
    assert list(out_dir.iterdir()) == []  # no bundle, no staging tree
