"""[setup.database]: install when absent, a re-run that changes nothing, an upgrade
with its backup, rollbacks (a later failure, a broken script) that leave the
database as it was, refusals before any change; the password only in the .pgpass
and, encrypted, in the config."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from bundler.pgcluster import Cluster
from installer.plugins.setup import _dbschema
from tests.setup.conftest import engine_section, skip_engine_state
from tests.treesnap import tree

pytestmark = [pytest.mark.postgres, pytest.mark.rpm, pytest.mark.slow]

SCRIPTS = "usr/share/engine/dbscripts"
BACKUPS = "var/lib/satchel/backup/setup"
CONFIG = "etc/engine/engine.conf.d/10-setup-database.conf"
PGPASS = "root/.pgpass"


_skip = skip_engine_state


@pytest.fixture
def names(db_names: dict[str, str]) -> dict[str, str]:
    return db_names


def section(**database: Any) -> dict[str, Any]:
    full = engine_section()
    db = dict(full["database"], **database)
    return {"app": "engine", "pki": full["pki"], "database": db}


def digest(pg: Cluster, db: str) -> dict[str, str]:
    """Every table of the database's public schema with a checksum of its rows."""
    tables = [r[0] for r in pg.run_sql(db, "SELECT tablename FROM pg_tables WHERE "
                                           "schemaname = 'public' ORDER BY 1")]
    out = {}
    for t in tables:
        cols = "t::text" if t != "schema_version" else "(t.version, t.script, t.sha256)::text"
        row = pg.run_sql(db, f'SELECT md5(coalesce(string_agg({cols}, \',\' ORDER BY {cols}), '
                             f"'')) FROM \"{t}\" t")
        out[t] = row[0][0]
    return out


def versions(pg: Cluster, db: str) -> list[int]:
    return [r[0] for r in pg.run_sql(db, "SELECT version FROM schema_version ORDER BY 1")]


def role_exists(pg: Cluster, role: str) -> bool:
    return bool(pg.run_sql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"))


def db_exists(pg: Cluster, db: str) -> bool:
    return bool(pg.run_sql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{db}'"))


def password_of(root: Path, names: dict[str, str]) -> str:
    text = (root / PGPASS).read_text()
    lines = [line for line in text.splitlines()
             if line.split(":")[2:4] == [names["SETUP_DB/database"], names["SETUP_DB/user"]]]
    assert len(lines) == 1
    return lines[0].split(":", 4)[4]


def add_script(root: Path, name: str, sql: str) -> None:
    (root / SCRIPTS / name).write_text(sql)


def all_text(root: Path, skip: str = PGPASS) -> bytes:
    """Every regular file of the root but `skip`, concatenated (logs included)."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.relative_to(root).as_posix() != skip:
            out.append(p.read_bytes())
    return b"\n".join(out)


def test_install_then_rerun_changes_nothing(engine_root: Path, setup_config: Any,
                                            run_setup: Any, db_settings: dict[str, str],
                                            names: dict[str, str], pg_cluster: Cluster) -> None:
    setup_config(engine_root, section())
    settings = {**db_settings, **names}
    db, user = names["SETUP_DB/database"], names["SETUP_DB/user"]
    code, runner, out = run_setup(engine_root, settings, dry_run=True)
    assert code == 0, out
    assert (f"database: create database {db} on {pg_cluster.host}:{pg_cluster.port}, schema "
            "version 2 (0001_create_schema.sql, 0002_default_options.sql)"
            in runner.context.plan_lines)
    assert not db_exists(pg_cluster, db) and not role_exists(pg_cluster, user)
    code, runner, out = run_setup(engine_root, settings)
    assert code == 0, out
    assert versions(pg_cluster, db) == [1, 2]
    tables = pg_cluster.run_sql(db, "SELECT tablename, tableowner FROM pg_tables WHERE "
                                    "schemaname = 'public' ORDER BY 1")
    assert tables == [("schema_version", user), ("storage_pool", user), ("vdc_options", user)]
    assert pg_cluster.run_sql(db, "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                  "WHERE datname = current_database()") == [(user,)]
    # the .pgpass: 0600 root, one line for the role
    password = password_of(engine_root, names)
    st = (engine_root / PGPASS).stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", password)
    # the config: the ciphertext only, which the engine's key decrypts to the password
    text = (engine_root / CONFIG).read_text()
    assert f'ENGINE_DB_DATABASE="{db}"' in text and f'ENGINE_DB_USER="{user}"' in text
    assert f'ENGINE_DB_PORT="{pg_cluster.port}"' in text
    cipher = re.search(r'^ENGINE_DB_PASSWORD_ENCRYPTED="([^"]+)"$', text, re.M)
    assert cipher is not None
    clear = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey",
                            engine_root / "etc/pki/engine/private/engine.key",
                            "-pkeyopt", "rsa_padding_mode:oaep"],
                           input=base64.b64decode(cipher.group(1)), capture_output=True,
                           check=True).stdout
    assert clear.decode() == password
    # never in clear anywhere else: logs, config, state, answers
    assert password.encode() not in all_text(engine_root)
    assert password not in out
    record = runner.context.state.databases("setup")[db]
    assert record["created"] is True and record["role_created"] is True
    assert record["pgpass"] == "/root/.pgpass" and record["version"] == 2
    assert not (engine_root / BACKUPS).exists()
    # the role's password works (setup gave PostgreSQL only its SCRAM verifier)
    psycopg2.connect(host=pg_cluster.host, port=pg_cluster.port, user=user, dbname=db,
                     password=password).close()

    before, dbsum = tree(engine_root, _skip), digest(pg_cluster, db)
    # a re-run without the admin password at all: not needed when current
    rerun = {k: v for k, v in settings.items() if k != "DB/passwordFile"}
    code, runner, out = run_setup(engine_root, rerun)
    assert code == 0, out
    assert "is up to date (version 2)" in "\n".join(runner.context.plan_lines)
    assert tree(engine_root, _skip) == before
    assert digest(pg_cluster, db) == dbsum
    assert not (engine_root / BACKUPS).exists()


def test_upgrade_backup_and_rollbacks(engine_root: Path, setup_config: Any, run_setup: Any,
                                      db_settings: dict[str, str], names: dict[str, str],
                                      pg_cluster: Cluster,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    setup_config(engine_root, section())
    settings = {**db_settings, **names}
    code, _, out = run_setup(engine_root, settings)
    assert code == 0, out
    db = names["SETUP_DB/database"]
    pg_cluster.run_sql(db, "INSERT INTO vdc_options VALUES ('Local', 'kept')")
    v2 = digest(pg_cluster, db)

    # the v2 package brings 0003: a failure after it committed restores the backup
    add_script(engine_root, "0003_add_hosts.sql",
               "CREATE TABLE vds (id serial PRIMARY KEY, name text);\n"
               "UPDATE vdc_options SET option_value = 'changed' WHERE option_name = 'Local';\n")
    before = tree(engine_root, _skip)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, runner, out = run_setup(engine_root, settings)
    assert code == 1, out
    assert "rolled back" in out
    monkeypatch.delenv("SATCHEL_FAIL_AT")
    assert digest(pg_cluster, db) == v2
    assert versions(pg_cluster, db) == [1, 2]
    assert tree(engine_root, _skip) == before
    assert not (engine_root / BACKUPS).exists() or not list((engine_root / BACKUPS).iterdir())

    # a broken script: its transaction rolls back, the database is as it was
    add_script(engine_root, "0004_broken.sql", "CREATE TABLE broken (;\n")
    before = tree(engine_root, _skip)
    code, _, out = run_setup(engine_root, settings)
    assert code == 1, out
    assert "0004_broken.sql failed" in out
    assert digest(pg_cluster, db) == v2
    assert tree(engine_root, _skip) == before
    (engine_root / SCRIPTS / "0004_broken.sql").unlink()

    # held back on request; and without the admin password, refused with the reason
    code, runner, out = run_setup(engine_root, {**settings, "SETUP_DB/upgrade": "false"})
    assert code == 0, out
    assert (f"database: {db} is at version 2; 0003_add_hosts.sql not applied "
            "(SETUP_DB/upgrade=false)") in runner.context.plan_lines
    assert versions(pg_cluster, db) == [1, 2] and not (engine_root / BACKUPS).exists()
    no_admin = {k: v for k, v in settings.items() if k != "DB/passwordFile"}
    code, _, out = run_setup(engine_root, {**no_admin, "SETUP_DB/upgrade": "true",
                                           "DB/passwordFile": "/nonexistent"})
    assert code == 2, out
    assert f"database {db}: the upgrade from version 2 to 3 needs the admin connection" in out

    # the upgrade itself: a backup first, then 0003 in
    code, runner, out = run_setup(engine_root, {**settings, "SETUP_DB/upgrade": "true"})
    assert code == 0, out
    plan = "\n".join(runner.context.plan_lines)
    assert "upgrade " + db + " from version 2 to 3 (0003_add_hosts.sql)" in plan
    assert versions(pg_cluster, db) == [1, 2, 3]
    assert pg_cluster.run_sql(db, "SELECT option_value FROM vdc_options WHERE "
                                  "option_name = 'Local'") == [("changed",)]
    dumps = list((engine_root / BACKUPS).glob(f"{db}-*.dump"))
    assert len(dumps) == 1 and dumps[0].stat().st_mode & 0o777 == 0o600
    record = runner.context.state.databases("setup")[db]
    assert record["backup"] == "/" + dumps[0].relative_to(engine_root).as_posix()
    assert record["created"] is True and record["version"] == 3
    assert record["backup"] in out
    # the backup is restorable and holds the pre-upgrade content
    check = db + "_check"
    pg_cluster.create_database(check)
    subprocess.run([pg_cluster.bindir / "pg_restore", "--no-owner", "--exit-on-error",
                    "-d", check, dumps[0]], env=pg_cluster.env(), check=True,
                   capture_output=True)
    assert digest(pg_cluster, check) == v2

    # and a re-run: no new backup, nothing changed
    before, dbsum = tree(engine_root, _skip), digest(pg_cluster, db)
    code, _, out = run_setup(engine_root, settings)
    assert code == 0, out
    assert list((engine_root / BACKUPS).glob("*")) == dumps
    assert tree(engine_root, _skip) == before and digest(pg_cluster, db) == dbsum

    # an applied script changed since: a warning, never applied again
    with (engine_root / SCRIPTS / "0001_create_schema.sql").open("a") as f:
        f.write("-- reworded\n")
    code, _, out = run_setup(engine_root, settings)
    assert code == 0, out
    assert "changed since they were applied: 0001_create_schema.sql" in out
    assert digest(pg_cluster, db) == dbsum


def test_fail_after_install_drops_database_and_role(engine_root: Path, setup_config: Any,
                                                    run_setup: Any,
                                                    db_settings: dict[str, str],
                                                    names: dict[str, str],
                                                    pg_cluster: Cluster,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    setup_config(engine_root, section())
    before = tree(engine_root, _skip)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, _, out = run_setup(engine_root, {**db_settings, **names})
    assert code == 1, out
    assert not db_exists(pg_cluster, names["SETUP_DB/database"])
    assert not role_exists(pg_cluster, names["SETUP_DB/user"])
    assert tree(engine_root, _skip) == before


def test_refused_before_any_change(engine_root: Path, setup_config: Any, run_setup: Any,
                                   db_settings: dict[str, str], names: dict[str, str],
                                   pg_cluster: Cluster, tmp_path: Path) -> None:
    setup_config(engine_root, section())
    before = tree(engine_root, _skip)
    db, user = names["SETUP_DB/database"], names["SETUP_DB/user"]

    def refused(settings: dict[str, str], words: str, code: int = 2) -> str:
        got, _, out = run_setup(engine_root, {**db_settings, **names, **settings})
        assert got == code, out
        assert words in out
        assert tree(engine_root, _skip) == before
        assert not db_exists(pg_cluster, db) and not role_exists(pg_cluster, user)
        return out

    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    out = refused({"DB/passwordFile": str(wrong)}, "password authentication failed")
    assert "not-the-password" not in out
    refused({"DB/port": "1"}, "cannot connect to the database server at 127.0.0.1:1")
    refused({"DB/port": "70000"}, "DB/port: 70000 is not a TCP port")
    refused({"SETUP_DB/database": "bad=name"}, "SETUP_DB/database: 'bad=name' is not a name")
    refused({"SETUP_DB/password": "tab\there"}, "SETUP_DB/password: only printable ASCII")
    # malformed or duplicate scripts
    add_script(engine_root, "0002_again.sql", "SELECT 1;\n")
    add_script(engine_root, "3_short.sql", "SELECT 1;\n")
    before = tree(engine_root, _skip)
    out = refused({}, "0002_default_options.sql")
    assert "3_short.sql: not a NNNN_description.sql file" in out
    # no [setup.pki]
    table = section()
    del table["pki"]
    setup_config(engine_root, table)
    before = tree(engine_root, _skip)
    refused({}, "[setup.pki] is required")


def test_existing_role_needs_its_password(engine_root: Path, setup_config: Any,
                                          run_setup: Any, db_settings: dict[str, str],
                                          names: dict[str, str], pg_cluster: Cluster,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A role setup did not create: refused without its password; with a new password
    given, it is set (and set back by a rollback)."""
    user = names["SETUP_DB/user"]
    pg_cluster.run_sql("postgres", f"CREATE ROLE \"{user}\" LOGIN PASSWORD 'old-secret'")
    setup_config(engine_root, section())
    settings = {**db_settings, **names}
    code, _, out = run_setup(engine_root, settings)
    assert code == 2, out
    assert f"role {user} exists and setup has no password" in out
    new = {**settings, "SETUP_DB/password": "new:pw\\1"}
    before = tree(engine_root, _skip)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")  # rolled back: the old password again
    code, _, out = run_setup(engine_root, new)
    assert code == 1, out
    monkeypatch.delenv("SATCHEL_FAIL_AT")
    psycopg2.connect(host=pg_cluster.host, port=pg_cluster.port, user=user, dbname="postgres",
                     password="old-secret").close()
    assert not db_exists(pg_cluster, names["SETUP_DB/database"])
    assert tree(engine_root, _skip) == before
    code, runner, out = run_setup(engine_root, new)
    assert code == 0, out
    assert f"set a new password for role {user}" in "\n".join(runner.context.plan_lines)
    line = [x for x in (engine_root / PGPASS).read_text().splitlines() if user in x]
    assert line == [f"{pg_cluster.host}:{pg_cluster.port}:{names['SETUP_DB/database']}:"
                    f"{user}:new\\:pw\\\\1"]
    assert not runner.context.state.databases("setup")[names["SETUP_DB/database"]][
        "role_created"]


# -- helpers without a server --------------------------------------------------------

def test_pgpass_lines() -> None:
    text = "# mine\nother:5432:*:me:x\n"
    data = _dbschema.pgpass_update(text, "db1", 5432, "engine", "engine", "p:w\\d")
    assert data.decode() == "# mine\nother:5432:*:me:x\ndb1:5432:engine:engine:p\\:w\\\\d\n"
    assert _dbschema.pgpass_lookup(data.decode(), "db1", 5432, "engine", "engine") == "p:w\\d"
    assert _dbschema.pgpass_lookup(data.decode(), "db1", 5433, "engine", "engine") is None
    again = _dbschema.pgpass_update(data.decode(), "db1", 5432, "engine", "engine", "new")
    assert again.decode().splitlines()[-1] == "db1:5432:engine:engine:new"
    assert len(again.decode().splitlines()) == 3


def test_script_names(tmp_path: Path) -> None:
    for name in ("0001_a.sql", "0010_b.sql", "README"):
        (tmp_path / name).write_text("SELECT 1;")
    scripts = _dbschema.read_scripts(tmp_path, "/x")
    assert [(s.version, s.name) for s in scripts] == [(1, "0001_a.sql"), (10, "0010_b.sql")]
    (tmp_path / "0000_zero.sql").write_text("")
    with pytest.raises(Exception, match=r"0000_zero\.sql: not a NNNN"):
        _dbschema.read_scripts(tmp_path, "/x")
