"""install cleanup after the real `install setup` of the engine-like appliance
(recipes/engine.toml's [setup], the engine RPMs installed with rpm into a temporary
root, the test PostgreSQL cluster): three runs, engine-cleanup's sequences I and
II with rpm -e / rpm -i, a kept database reused by the next setup, an edited
configuration file, a failure at every stage, secrets out of the logs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bundler.dnf import rpm_root
from bundler.pgcluster import Cluster
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from installer.plugins.cleanup import base
from tests.cleanup.conftest import (
    RunCleanup,
    db_exists,
    digest,
    logs,
    role_exists,
    snapshot,
)
from tests.setup.conftest import RunSetup, engine_section

pytestmark = [pytest.mark.postgres, pytest.mark.rpm, pytest.mark.slow]

ADMIN_PASSWORD = "Adm1n-cleanup-s3cret"
PGCONF = "var/lib/pgsql/data/postgresql.conf"
PACKAGES = ["engine-tools", "engine-iso-files", "engine-notifier", "engine-etl", "engine"]
STAGES = ("transaction_begin", "early_misc", "packages", "misc", "transaction_end",
          "closeup")


@pytest.fixture
def names(db_names: dict[str, str]) -> dict[str, str]:
    return db_names


@pytest.fixture
def appliance(engine_root: Path, setup_config: Any, db_settings: dict[str, str],
              names: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The engine root with recipes/engine.toml's [setup] in place (as a previous
    setup keeps it) and the setup answers of the test."""
    conf = engine_root / PGCONF
    conf.parent.mkdir(parents=True)
    conf.write_text("max_connections = 100\nshared_buffers = 128MB\n")
    setup_config(engine_root, engine_section())
    settings = {**db_settings, **names, "SETUP/adminPassword": ADMIN_PASSWORD,
                "SETUP_PG/conf": "/" + PGCONF}
    return engine_root, settings


def setup(run_setup: RunSetup, root: Path, settings: dict[str, str]) -> list[str]:
    """Run setup; its plan."""
    code, runner, out = run_setup(root, settings)
    assert code == EXIT_OK, out
    assert runner.context is not None
    return list(runner.context.plan_lines)


def test_setup_then_cleanup_three_times(appliance: tuple[Path, dict[str, str]],
                                        run_setup: RunSetup, run_cleanup: RunCleanup,
                                        pg_cluster: Cluster) -> None:
    root, settings = appliance
    db, role = settings["SETUP_DB/database"], settings["SETUP_DB/user"]
    setup(run_setup, root, settings)
    assert (root / "etc/pki/engine/ca.pem").is_file() and db_exists(pg_cluster, db)
    secrets = [ADMIN_PASSWORD, Path(settings["DB/passwordFile"]).read_text().strip(),
               (root / "root/.pgpass").read_text().strip().rsplit(":", 1)[1],
               (root / "etc/pki/engine/private/keystore.password").read_text().strip()]
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "engine.service").is_symlink()

    code, _, out = run_cleanup(root)
    assert code == EXIT_OK, out
    assert not (root / "etc/pki/engine").exists()
    assert (root / "root/.pgpass").is_file()  # the kept role's password (no admin given)
    assert not list((root / "etc/engine/engine.conf.d").iterdir())
    assert not (root / "etc/engine/engine-log-collector.conf").exists()
    assert not (root / "etc/sysctl.d/10-engine.conf").exists()
    assert not (root / "var/lib/satchel/setup/answers.conf").exists()
    assert (root / "var/lib/satchel/setup/recipe.json").is_file()
    assert (root / "etc/exports.d/engine.exports").is_file()
    assert any((root / "var/lib/exports/iso").iterdir())
    assert "max_connections = 150" in (root / PGCONF).read_text()  # replaced: left
    assert not db_exists(pg_cluster, db) and role_exists(pg_cluster, role)
    assert base.FINISHED in out and base.KEPT_DB_NOTE not in out
    assert not any(os.path.lexists(wants / f"{u}.service")
                   for u in ("engine", "engine-etl", "engine-notifier"))
    roles = pg_cluster.run_sql("postgres", "SELECT rolname FROM pg_roles ORDER BY 1")
    for _ in range(2):
        before = snapshot(root)
        code, _, out = run_cleanup(root)
        assert code == EXIT_OK, out
        assert base.NOTHING in out and snapshot(root) == before
        assert not db_exists(pg_cluster, db)
        assert pg_cluster.run_sql("postgres", "SELECT rolname FROM pg_roles ORDER BY 1") == roles
    for secret in secrets:
        assert secret not in logs(root) and secret not in out


def test_keeping_the_database_lets_the_next_setup_reuse_it(
        appliance: tuple[Path, dict[str, str]], run_setup: RunSetup, run_cleanup: RunCleanup,
        pg_cluster: Cluster) -> None:
    root, settings = appliance
    db = settings["SETUP_DB/database"]
    setup(run_setup, root, settings)
    pg_cluster.run_sql(db, "INSERT INTO storage_pool (name, storage_type) "
                           "VALUES ('kept', 'nfs')")
    rows = digest(pg_cluster, db)
    code, _, out = run_cleanup(root, {"CLEANUP/dropDatabase": "false"})
    assert code == EXIT_OK, out
    assert [n for n in (base.FINISHED, base.KEPT_DB_NOTE) if n in out] == [
        base.FINISHED, base.KEPT_DB_NOTE]
    assert out.index(base.FINISHED) < out.index(base.KEPT_DB_NOTE)
    assert not (root / "etc/pki/engine").exists()
    assert (root / "root/.pgpass").is_file()  # the way back into the kept database
    assert digest(pg_cluster, db) == rows
    # the next setup (a new PKI, the same database): no schema installed, rows kept
    plan = setup(run_setup, root, settings)
    assert any(line.startswith(f"database: {db} is up to date") for line in plan), plan
    assert not any("create" in line for line in plan if line.startswith("database:")), plan
    assert digest(pg_cluster, db) == rows
    assert (root / "etc/pki/engine/ca.pem").is_file()


def test_an_edited_configuration_file_is_kept_and_listed(
        appliance: tuple[Path, dict[str, str]], run_setup: RunSetup,
        run_cleanup: RunCleanup) -> None:
    root, settings = appliance
    setup(run_setup, root, settings)
    conf = root / "etc/engine/engine.conf.d/30-protocols.conf"
    edited = conf.read_text() + "ENGINE_EXTRA=1  # by hand\n"
    conf.write_text(edited)
    code, _, out = run_cleanup(root)
    assert code == EXIT_OK, out
    assert conf.read_text() == edited
    assert "  /etc/engine/engine.conf.d/30-protocols.conf (edited since setup wrote it)" in out
    assert not (root / "etc/engine/engine.conf.d/20-java.conf").exists()
    setup(run_setup, root, settings)  # setup writes its own version again


def _packages(root: Path, rpms: Path) -> None:
    """rpm -e the appliance's packages, then rpm -i them again."""
    rpm_root(root, ["-e", *PACKAGES])
    assert not (root / "usr/share/engine").exists()
    files = sorted(str(p) for p in rpms.glob("engine-*.rpm")
                   if not p.name.startswith("engine-jre"))
    rpm_root(root, ["-i", *files])


@pytest.mark.parametrize("sequence", ["I", "II"])
def test_both_sequences_end_in_a_working_setup(
        appliance: tuple[Path, dict[str, str]], run_setup: RunSetup, run_cleanup: RunCleanup,
        pg_cluster: Cluster, engine_rpms: Path, sequence: str) -> None:
    """I: cleanup, rpm -e, rpm -i, setup. II: rpm -e, rpm -i, cleanup, setup."""
    root, settings = appliance
    db = settings["SETUP_DB/database"]
    setup(run_setup, root, settings)
    if sequence == "I":
        assert run_cleanup(root)[0] == EXIT_OK
        _packages(root, engine_rpms)
    else:
        _packages(root, engine_rpms)
        code, _, out = run_cleanup(root)
        assert code == EXIT_OK, out
        assert base.FINISHED in out
    assert not db_exists(pg_cluster, db) and not (root / "etc/pki/engine").exists()
    setup(run_setup, root, settings)
    assert db_exists(pg_cluster, db) and "vdc_options" in digest(pg_cluster, db)
    assert (root / "etc/engine/engine.conf.d/10-setup-database.conf").is_file()
    assert (root / "etc/systemd/system/multi-user.target.wants/engine.service").is_symlink()
    before = snapshot(root)
    setup(run_setup, root, settings)  # and that setup's registry is whole: no change
    assert snapshot(root) == before


@pytest.mark.parametrize("stage", STAGES)
def test_a_failure_at_any_stage_restores_files_database_and_role(
        appliance: tuple[Path, dict[str, str]], run_setup: RunSetup, run_cleanup: RunCleanup,
        pg_cluster: Cluster, db_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        stage: str) -> None:
    root, settings = appliance
    db, role = settings["SETUP_DB/database"], settings["SETUP_DB/user"]
    setup(run_setup, root, settings)
    before, rows = snapshot(root), digest(pg_cluster, db)
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    code, _, out = run_cleanup(root, db_settings)  # as the admin: the role goes too
    assert code == EXIT_FAILED, out
    assert snapshot(root) == before
    assert digest(pg_cluster, db) == rows and role_exists(pg_cluster, role)
    monkeypatch.delenv("SATCHEL_FAIL_AT")
    # everything as setup left it: a setup run changes nothing (the role's password
    # from the .pgpass still works)
    setup(run_setup, root, settings)
    assert snapshot(root) == before and digest(pg_cluster, db) == rows
    code, _, out = run_cleanup(root, db_settings)
    assert code == EXIT_OK, out
    assert not db_exists(pg_cluster, db) and not role_exists(pg_cluster, role)


def test_without_the_registry_setup_traces_make_it_refuse(
        appliance: tuple[Path, dict[str, str]], run_setup: RunSetup, run_cleanup: RunCleanup,
        pg_cluster: Cluster) -> None:
    root, settings = appliance
    db = settings["SETUP_DB/database"]
    setup(run_setup, root, settings)
    (root / "var/lib/satchel/state.json").unlink()
    before, rows = snapshot(root), digest(pg_cluster, db)
    code, _, out = run_cleanup(root)
    assert code == EXIT_REFUSED, out
    for trace in ("/var/lib/satchel/setup/answers.conf", "/etc/pki/engine",
                  "/etc/engine/engine.conf.d/10-setup-database.conf",
                  "/etc/engine/.tools-password"):
        assert trace in out
    assert snapshot(root) == before and digest(pg_cluster, db) == rows
