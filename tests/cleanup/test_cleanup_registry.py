"""install cleanup on a registry a stand-in setup wrote (tests/cleanup/fakesetup.py)
and a real database: what goes, what stays, idempotence, the database question,
rollback at every stage, refusals, the command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bundler.pgcluster import Cluster
from installer import cli
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_ROLLBACK_INCOMPLETE
from installer.plugins.cleanup import _facts, base, database
from installer.plugins.cleanup import services as cleanup_services
from tests.cleanup.conftest import (
    RunCleanup,
    db_exists,
    digest,
    drop_role,
    logs,
    role_exists,
    snapshot,
)
from tests.cleanup.fakesetup import (
    AppDb,
    engine_like,
    make_app_db,
    make_root,
    pgpass_line,
    run_fake_setup,
)

pytestmark = [pytest.mark.postgres]

BACKUPS = "var/lib/satchel/backup/cleanup"
STAGES = ("transaction_begin", "early_misc", "packages", "misc", "transaction_end",
          "closeup")


@pytest.fixture
def app_db(pg_cluster: Cluster) -> Iterator[AppDb]:
    db = make_app_db(pg_cluster, uuid.uuid4().hex[:10])
    yield db
    pg_cluster.drop_database(db.name)
    drop_role(pg_cluster, db.user)


@pytest.fixture
def set_up(tmp_path: Path, app_db: AppDb) -> Path:
    """A root the stand-in setup ran on, with the database recorded."""
    root = make_root(tmp_path / "root")
    run_fake_setup(root, engine_like(app_db), tmp_path / "plugins")
    return root


def notes(out: str) -> list[str]:
    """The lines of the output that are not log lines (`+ cmd`, `done: ...`, ...)."""
    return [line for line in out.splitlines()
            if line in (base.FINISHED, base.KEPT_DB_NOTE, base.NOTHING)]


def registry(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "var/lib/satchel/state.json").read_text())
    return data["actions"].get("setup", {})


def test_removes_what_setup_made_drops_the_database_and_keeps_the_rest(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup) -> None:
    root = set_up
    code, _, out = run_cleanup(root)
    assert code == EXIT_OK, out
    for gone in ("etc/pki/fake", "etc/fake/conf.d", "etc/fake/ca.pem", "etc/sysctl.d",
                 "var/lib/satchel/setup/answers.conf"):
        assert not os.path.lexists(root / gone), gone
    # kept: setup's configuration, what it replaced, NFS
    assert (root / "var/lib/satchel/setup/recipe.json").is_file()
    assert (root / "etc/fake/fake.conf").read_text() == "setup's version\n"
    assert (root / "etc/exports.d/fake.exports").is_file()
    assert (root / "var/lib/exports/iso/x.iso").is_file()
    # the database: dropped after a backup whose path is printed; without the admin
    # connection its role stays, with its password in the .pgpass, for the next setup
    assert not db_exists(pg_cluster, app_db.name)
    assert role_exists(pg_cluster, app_db.user)
    assert (root / "root/.pgpass").read_text() == pgpass_line(app_db) + "\n"
    assert f"role {app_db.user} kept (its password stays in /root/.pgpass)" in out
    dumps = list((root / BACKUPS).glob(f"{app_db.name}-*.dump"))
    assert len(dumps) == 1 and dumps[0].stat().st_mode & 0o777 == 0o600
    assert (root / BACKUPS).stat().st_mode & 0o777 == 0o700
    assert f"database {app_db.name} dropped; its backup: {dumps[0]}" in out
    assert notes(out)[-1] == base.FINISHED
    assert base.KEPT_DB_NOTE not in out
    # the registry: only what stays
    left = registry(root)
    assert sorted(left["files"]) == ["/etc/exports.d/fake.exports", "/etc/fake/fake.conf",
                                     "/var/lib/exports/iso/x.iso",
                                     "/var/lib/satchel/setup/recipe.json"]
    assert sorted(left["dirs"]) == ["/etc/exports.d", "/var/lib/exports",
                                    "/var/lib/exports/iso", "/var/lib/satchel/setup"]
    assert left["databases"] == {}
    # the backup restores
    check = app_db.name + "_check"
    pg_cluster.create_database(check)
    try:
        env = dict(os.environ, **pg_cluster.env(check))
        subprocess.run([pg_cluster.bindir / "pg_restore", "--no-owner", "-d", check,
                        dumps[0]], env=env, check=True, capture_output=True)
        assert digest(pg_cluster, check)["vdc_options"][0] == 50
    finally:
        pg_cluster.drop_database(check)
    # secrets never in the log or the output
    assert app_db.password not in logs(root) and app_db.password not in out


def test_second_and_third_runs_find_nothing_to_clean(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup) -> None:
    root = set_up
    assert run_cleanup(root)[0] == EXIT_OK
    before = snapshot(root)
    for _ in range(2):
        code, runner, out = run_cleanup(root, unattended=False)  # nothing to ask either
        assert code == EXIT_OK, out
        assert base.NOTHING in out and "Drop database?" not in out
        assert "Proceed" not in out
        assert base.FINISHED in out
        assert runner.context is not None and runner.context.transaction.changes() == 0
        assert snapshot(root) == before
        assert not db_exists(pg_cluster, app_db.name)


def test_keeping_the_database_keeps_its_pgpass_and_notes_the_hosts(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup) -> None:
    root = set_up
    rows = digest(pg_cluster, app_db.name)
    code, _, out = run_cleanup(root, {"CLEANUP/dropDatabase": "false"})
    assert code == EXIT_OK, out
    assert digest(pg_cluster, app_db.name) == rows
    assert (root / "root/.pgpass").read_text() == pgpass_line(app_db) + "\n"
    assert not (root / "etc/pki/fake").exists()
    assert notes(out)[-2:] == [base.FINISHED, base.KEPT_DB_NOTE]
    assert not (root / BACKUPS).exists()
    assert app_db.name in registry(root)["databases"]
    before = snapshot(root)
    code, _, out = run_cleanup(root, {"CLEANUP/dropDatabase": "false"})
    assert code == EXIT_OK and base.NOTHING in out and base.KEPT_DB_NOTE in out
    assert snapshot(root) == before


@pytest.mark.parametrize("answer,dropped", [("\n", False), ("no\n", False), ("yes\n", True)])
def test_interactive_asks_the_question_no_by_default(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup,
        answer: str, dropped: bool) -> None:
    code, _, out = run_cleanup(set_up, unattended=False, stdin=io.StringIO(answer + "\n"))
    assert code == EXIT_OK, out
    assert f"{database.PROMPT} [no]: " in out
    assert "Proceed with these changes? (Yes/no)" in out
    assert db_exists(pg_cluster, app_db.name) is not dropped


def test_an_edited_file_is_kept_and_listed_unless_remove_changed(
        set_up: Path, run_cleanup: RunCleanup) -> None:
    root = set_up
    conf = root / "etc/fake/conf.d/10-setup.conf"
    conf.write_text("FAKE=2  # tuned by hand\n")
    code, _, out = run_cleanup(root, {"CLEANUP/dropDatabase": "false"})
    assert code == EXIT_OK, out
    assert conf.read_text() == "FAKE=2  # tuned by hand\n"
    assert ("  /etc/fake/conf.d/10-setup.conf (edited since setup wrote it)" in out)
    assert "--remove-changed" in out
    assert not (root / "etc/pki/fake").exists()
    # the edited file is still listed by a later run, which changes nothing
    code, _, out = run_cleanup(root, {"CLEANUP/dropDatabase": "false"})
    assert code == EXIT_OK and base.NOTHING in out and "10-setup.conf" in out
    code, _, out = run_cleanup(root, {"CLEANUP/dropDatabase": "false",
                                      "CLEANUP/removeChanged": "true"})
    assert code == EXIT_OK, out
    assert not conf.exists() and not (root / "etc/fake/conf.d").exists()


@pytest.mark.parametrize("other", ["", "db.example.org:5432:*:someone:secret\n"])
def test_with_the_admin_the_role_and_its_pgpass_line_go(
        tmp_path: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup,
        db_settings: dict[str, str], other: str) -> None:
    root = make_root(tmp_path / "root")
    run_fake_setup(root, engine_like(app_db, pgpass_extra=other), tmp_path / "plugins")
    code, _, out = run_cleanup(root, db_settings)
    assert code == EXIT_OK, out
    assert not role_exists(pg_cluster, app_db.user)
    assert f"role {app_db.user} dropped" in out
    pgpass = root / "root/.pgpass"
    if other:
        assert pgpass.read_text() == other and pgpass.stat().st_mode & 0o777 == 0o600
    else:
        assert not pgpass.exists()
    assert "/root/.pgpass" not in registry(root)["files"]
    before = snapshot(root)
    code, _, out = run_cleanup(root, db_settings)
    assert code == EXIT_OK and base.NOTHING in out and snapshot(root) == before


@pytest.mark.parametrize("stage", STAGES)
def test_a_failure_at_any_stage_restores_everything(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup,
        db_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    """With the admin connection: the role goes too, and comes back."""
    root = set_up
    before, rows = snapshot(root), digest(pg_cluster, app_db.name)
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    code, _, out = run_cleanup(root, db_settings)
    assert code == EXIT_FAILED, out
    assert f"failure injected at stage {stage}" in out
    assert snapshot(root) == before
    assert db_exists(pg_cluster, app_db.name) and role_exists(pg_cluster, app_db.user)
    assert digest(pg_cluster, app_db.name) == rows
    # the restored role logs in with its old password, the view came back
    import psycopg2
    conn = psycopg2.connect(host=app_db.host, port=app_db.port, user=app_db.user,
                            password=app_db.password, dbname=app_db.name)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM options_view")
        assert cur.fetchone()[0] == 50
    conn.close()
    monkeypatch.delenv("SATCHEL_FAIL_AT")
    code, _, out = run_cleanup(root, db_settings)
    assert code == EXIT_OK, out
    assert not db_exists(pg_cluster, app_db.name) and not role_exists(pg_cluster, app_db.user)
    assert f"role {app_db.user} dropped" in out
    password = Path(db_settings["DB/passwordFile"]).read_text().strip()
    assert password not in logs(root) and app_db.password not in logs(root)


def test_owner_that_may_create_databases_restores_without_the_admin(
        tmp_path: Path, pg_cluster: Cluster, run_cleanup: RunCleanup,
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = make_app_db(pg_cluster, uuid.uuid4().hex[:10], createdb=True)
    try:
        root = make_root(tmp_path / "root")
        run_fake_setup(root, engine_like(db), tmp_path / "plugins")
        before, rows = snapshot(root), digest(pg_cluster, db.name)
        monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
        code, _, out = run_cleanup(root)
        assert code == EXIT_FAILED, out
        assert snapshot(root) == before and digest(pg_cluster, db.name) == rows
    finally:
        pg_cluster.drop_database(db.name)
        drop_role(pg_cluster, db.user)


def test_owner_that_may_not_create_databases_names_the_backup_when_undo_fails(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = set_up
    code, _, out = run_cleanup(root, dry_run=True)
    assert code == EXIT_OK and "restore" in out and "by hand" in out
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, _, out = run_cleanup(root)
    assert code == EXIT_ROLLBACK_INCOMPLETE, out
    dump = next((root / BACKUPS).glob(f"{app_db.name}-*.dump"))
    assert f"pg_restore -C -d postgres {dump}" in out
    # the files came back all the same
    assert (root / "etc/pki/fake/ca.pem").is_file()
    pg_cluster.run_sql("postgres", f'ALTER ROLE "{app_db.user}" CREATEDB')


def test_services_setup_enabled_are_disabled_and_enabled_again_on_failure(
        tmp_path: Path, run_cleanup: RunCleanup, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_root(tmp_path / "root", units=("fake.service",))
    run_fake_setup(root, engine_like(services=("fake.service",)), tmp_path / "plugins")
    wants = root / "etc/systemd/system/multi-user.target.wants/fake.service"
    assert wants.is_symlink()
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "transaction_end")
    code, _, out = run_cleanup(root)
    assert code == EXIT_FAILED, out
    assert snapshot(root) == before
    monkeypatch.delenv("SATCHEL_FAIL_AT")
    code, _, out = run_cleanup(root)
    assert code == EXIT_OK, out
    assert not os.path.lexists(wants)
    assert registry(root)["services"] == {}


def test_services_are_stopped_on_the_running_system_and_started_on_failure(
        tmp_path: Path, run_cleanup: RunCleanup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake systemctl on PATH stands in for the running system's."""
    root = make_root(tmp_path / "root", units=("fake.service",))
    run_fake_setup(root, engine_like(services=("fake.service",)), tmp_path / "plugins")
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n'
        'case "$1" in is-active) echo active;; is-enabled) echo enabled;; esac\n')
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(cleanup_services, "can_stop", lambda plugin: True)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "misc")
    code, _, out = run_cleanup(root)
    assert code == EXIT_FAILED, out
    assert [c for c in calls.read_text().splitlines() if not c.startswith("is-")] == [
        "stop fake.service", "disable fake.service", "enable fake.service",
        "start fake.service"]
    assert "--root" not in calls.read_text()


def test_no_registry_but_setup_traces_refuses_before_any_change(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup) -> None:
    root = set_up
    state = root / "var/lib/satchel/state.json"
    saved = state.read_bytes()
    for damage in ("missing", "corrupt"):
        if damage == "missing":
            state.unlink()
        else:
            state.write_text("{ not json")
        before, rows = snapshot(root), digest(pg_cluster, app_db.name)
        code, _, out = run_cleanup(root)
        assert code == EXIT_REFUSED, out
        assert "/var/lib/satchel/state.json" in out
        assert "/var/lib/satchel/setup/answers.conf" in out
        assert "restore /var/lib/satchel/state.json from a backup" in out
        assert snapshot(root) == before and digest(pg_cluster, app_db.name) == rows
    state.write_bytes(saved)
    assert run_cleanup(root)[0] == EXIT_OK


def test_a_root_setup_never_touched_has_nothing_to_clean(
        tmp_path: Path, run_cleanup: RunCleanup) -> None:
    root = make_root(tmp_path / "root")
    code, _, out = run_cleanup(root)
    assert code == EXIT_OK, out
    assert base.NOTHING in out and base.FINISHED in out


def test_help_shows_only_d_u_h_and_the_other_options_still_work(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cleanup", "--help"]) == EXIT_OK
    text = capsys.readouterr().out
    options = sorted(opt for line in text.splitlines() if line.startswith("  -")
                     for opt in line.split("  ")[1].split(", "))
    assert options == ["--dont-drop-db", "--help", "--unattended", "-d", "-h", "-u"]
    assert "usage: install cleanup [-h] [-u] [-d]" in text
    for hidden in ("--root", "--set", "--answers", "--remove-changed", "DB/", "CLEANUP/"):
        assert hidden not in text
    assert cli.main(["cleanup", "-h"]) == EXIT_OK
    assert capsys.readouterr().out == text
    # the engine's options are accepted: keep the database, remove changed files
    conf = set_up / "etc/fake/conf.d/10-setup.conf"
    conf.write_text("edited\n")
    assert cli.main(["cleanup", "--root", str(set_up), "-u", "-d", "--remove-changed",
                     "--set", "CORE/confirm=false"]) == EXIT_OK
    out = capsys.readouterr().out
    assert base.KEPT_DB_NOTE in out and not conf.exists()
    assert db_exists(pg_cluster, app_db.name)
    assert cli.main(["demo", "--help"]) == EXIT_OK  # other actions keep their options
    assert "--unattended" in capsys.readouterr().out


def test_a_database_it_cannot_reach_is_refused_before_any_change(
        set_up: Path, app_db: AppDb, pg_cluster: Cluster, run_cleanup: RunCleanup,
        db_settings: dict[str, str], tmp_path: Path) -> None:
    root = set_up
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-Passw0rd\n")
    before, rows = snapshot(root), digest(pg_cluster, app_db.name)
    code, _, out = run_cleanup(root, {**db_settings, "DB/passwordFile": str(wrong)})
    assert code == EXIT_REFUSED, out
    assert f"cannot drop database {app_db.name}" in out and "keep the database (-d)" in out
    assert "not-the-Passw0rd" not in out and "not-the-Passw0rd" not in logs(root)
    assert snapshot(root) == before and digest(pg_cluster, app_db.name) == rows
    # keeping the database needs no connection at all
    code, _, out = run_cleanup(root, {**db_settings, "DB/passwordFile": str(wrong),
                                      "CLEANUP/dropDatabase": "false"})
    assert code == EXIT_OK, out
    assert digest(pg_cluster, app_db.name) == rows


def test_the_messages_are_engine_cleanups() -> None:
    assert database.PROMPT == ("Drop database? If you want to reuse the existing database "
                               "for the future installation choose no.")
    assert base.FINISHED == "Finished cleanup; it is now safe to re-run setup."
    assert base.KEPT_DB_NOTE == ("Note: after re-installing, hosts have to be re-installed "
                                 "or re-approved.")


def test_pgpass_lines() -> None:
    text = ("# comment\n*:*:*:admin:a\\:b\n127.0.0.1:5432:engine:engine:p\\:w\\\\x\n"
            "127.0.0.1:5432:other:engine:q\n")
    assert _facts.pgpass_password(text, "127.0.0.1", 5432, "engine", "engine") == "p:w\\x"
    assert _facts.pgpass_password(text, "h", 1, "d", "admin") == "a:b"
    assert _facts.pgpass_password(text, "h", 1, "d", "nobody") is None
    rest, removed, others = _facts.pgpass_without(text, "127.0.0.1", 5432, "engine", "engine")
    assert removed == 1 and others == 2
    assert rest == "# comment\n*:*:*:admin:a\\:b\n127.0.0.1:5432:other:engine:q\n"
    assert _facts.pgpass_without("h:1:d:u:p\n", "h", 1, "d", "u") == ("", 1, 0)
