"""[setup.options]: options and the default data center's storage type set in the
application's database, a re-run writes nothing, a rollback puts the old values
back. [setup.postgresql]: the settings in a postgresql.conf inside the root, never
lowering max_connections, a note instead of a restart; nothing for a remote
database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bundler.pgcluster import Cluster
from installer.plugins.setup import options, pgtune
from tests.setup.conftest import engine_section, skip_engine_state
from tests.treesnap import tree

CONF = "var/lib/pgsql/data/postgresql.conf"


_skip = skip_engine_state


@pytest.fixture
def names(db_names: dict[str, str]) -> dict[str, str]:
    return db_names


def snapshot(pg: Cluster, db: str) -> tuple[Any, ...]:
    opts = pg.run_sql(db, "SELECT option_name, option_value FROM vdc_options ORDER BY 1")
    pools = pg.run_sql(db, "SELECT name, storage_type FROM storage_pool ORDER BY 1")
    return tuple(opts), tuple(pools)


@pytest.mark.postgres
@pytest.mark.rpm
@pytest.mark.slow
def test_options_set_once_and_rolled_back(engine_root: Path, setup_config: Any,
                                          run_setup: Any, db_settings: dict[str, str],
                                          names: dict[str, str], pg_cluster: Cluster,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    full = engine_section()
    setup_config(engine_root, {"app": "engine", "pki": full["pki"],
                               "database": full["database"], "options": full["options"]})
    settings = {**db_settings, **names, "SETUP/applicationMode": "virt",
                "SETUP/storageType": "iscsi"}
    code, runner, out = run_setup(engine_root, settings)
    assert code == 0, out
    db = names["SETUP_DB/database"]
    first = snapshot(pg_cluster, db)
    assert first == ((("ApplicationMode", "virt"), ("MaxVdsMemOverCommit", "200"),
                      ("SSLEnabled", "true")), (("Default", "iscsi"),))

    # the same answers again: nothing written, not even a plan to
    before = tree(engine_root, _skip)
    code, runner, out = run_setup(engine_root, settings)
    assert code == 0, out
    assert "options: in " + db + ".vdc_options, nothing to change" in runner.context.plan_lines
    assert "set 3 option" not in out and "option(s) in" not in out
    assert snapshot(pg_cluster, db) == first and tree(engine_root, _skip) == before

    # a new answer, then a failure later in the run: the old values come back
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, runner, out = run_setup(engine_root, {**settings, "SETUP/applicationMode": "gluster",
                                                "SETUP/storageType": "nfs"})
    assert code == 1, out
    assert "set option ApplicationMode: 'virt' -> 'gluster'" in "\n".join(
        runner.context.plan_lines)
    assert snapshot(pg_cluster, db) == first
    monkeypatch.delenv("SATCHEL_FAIL_AT")
    code, runner, out = run_setup(engine_root, {**settings, "SETUP/applicationMode": "both"})
    assert code == 0, out
    assert snapshot(pg_cluster, db)[0][0] == ("ApplicationMode", "both")


def test_options_refusals(engine_root: Path, setup_config: Any, run_setup: Any) -> None:
    full = engine_section()
    setup_config(engine_root, {"app": "engine", "options": full["options"]})
    code, _, out = run_setup(engine_root, {})
    assert code == 2 and "[setup.options] needs [setup.database]" in out
    code, _, out = run_setup(engine_root, {"SETUP/applicationMode": "all"})
    assert code == 2 and "'all' is not one of both, virt, gluster" in out


def test_options_section_checks() -> None:
    assert options.check_section({"table": "a;b", "name_column": "n", "value_column": "v",
                                  "values": {"ApplicationMode": "x", "Y": 1}}) == [
        "table: 'a;b' is not a table name ([schema.]name)",
        "values.ApplicationMode: set by the answer SETUP/applicationMode",
        "values.Y: expected a string, got int"]


def _pg_section(**settings: Any) -> dict[str, Any]:
    return {"app": "engine", "postgresql": {"conf": "/" + CONF, "service": "postgresql.service",
                                            "settings": settings}}


def test_pgtune_local(engine_root: Path, setup_config: Any, run_setup: Any) -> None:
    conf = engine_root / CONF
    conf.parent.mkdir(parents=True)
    conf.write_text("# PostgreSQL configuration\n"
                    "max_connections = 100\t\t\t# (change requires restart)\n"
                    "#shared_buffers = 128MB\n"
                    "listen_addresses = 'localhost'\n")
    conf.chmod(0o600)
    setup_config(engine_root, _pg_section(max_connections=150, shared_buffers="256MB"))
    code, _, out = run_setup(engine_root, {"DB/host": "127.0.0.1"})
    assert code == 0, out
    assert conf.read_text() == ("# PostgreSQL configuration\n"
                                "max_connections = 150\n"
                                "#shared_buffers = 128MB\n"
                                "listen_addresses = 'localhost'\n"
                                "shared_buffers = '256MB'\n")
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "restart PostgreSQL to apply" in out
    # again: nothing to do
    before = tree(engine_root, _skip)
    code, _, out = run_setup(engine_root, {"DB/host": "127.0.0.1"})
    assert code == 0, out
    assert "restart PostgreSQL" not in out and tree(engine_root, _skip) == before
    # never lowered
    conf.write_text("max_connections = 300\n")
    code, _, out = run_setup(engine_root, {"DB/host": "/run/postgresql"})
    assert code == 0, out
    assert conf.read_text() == "max_connections = 300\nshared_buffers = '256MB'\n"


def test_pgtune_remote_or_off(engine_root: Path, setup_config: Any, run_setup: Any) -> None:
    conf = engine_root / CONF
    conf.parent.mkdir(parents=True)
    conf.write_text("max_connections = 100\n")
    setup_config(engine_root, _pg_section(max_connections=150))
    code, _, out = run_setup(engine_root, {"DB/host": "db.example.test"})
    assert code == 0, out
    assert "the database is on db.example.test, not local" in out
    code, runner, out = run_setup(engine_root, {"SETUP_PG/tune": "false"})
    assert code == 0, out
    assert "PostgreSQL tuning: off (SETUP_PG/tune=false)" in runner.context.plan_lines
    assert conf.read_text() == "max_connections = 100\n"
    conf.unlink()  # (SETUP_PG/tune=false and DB/host are kept from the previous runs)
    code, _, out = run_setup(engine_root, {"SETUP_PG/tune": "true", "DB/host": "localhost"})
    assert code == 0 and "is not there" in out


def test_pgtune_helpers() -> None:
    assert pgtune.current_values("a = 1 # x\n#b = 2\nc='it''s'\nd 4\na = 5\n") == {
        "a": "5", "c": "it's", "d": "4"}
    assert pgtune.is_local("::1") and pgtune.is_local("/tmp") and not pgtune.is_local("db")
    assert pgtune.check_section({"conf": "rel", "service": "pg", "settings": {
        "max_connections": "many"}}) == [
        "conf: expected an absolute path, got 'rel'",
        "service: 'pg' is not a systemd service unit name",
        "settings.max_connections: expected an integer"]
