"""The engine-like appliance end to end: recipes/engine.toml built into a bundle,
imported with real dnf into a fresh root (setup runs after the import, as the
recipe asks), a re-run of setup that changes nothing, and the upgrade path: a v2
bundle with a new schema script, imported over v1, whose setup backs the database
up and upgrades it."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.dnf import installed, rpm_root
from bundler.output import OutputFormat
from bundler.pgcluster import Cluster
from bundler.progress import Progress
from tests.rpmfixtures import SDE
from tests.setup.conftest import (
    ENGINE_RECIPE,
    FQDN,
    ROOT,
    drop_database_and_role,
    prepare_target_root,
)
from tests.treesnap import tree

pytestmark = [pytest.mark.rpm, pytest.mark.postgres, pytest.mark.slow]

ADMIN_PASSWORD = "Adm1n-s3cret-for-tools"


def _build(out: Path, payload: Path) -> Path:
    r = recipes.load(ENGINE_RECIPE)
    specs = (ROOT / "payload/demo/demo-base.spec", payload / "engine.spec")
    r = dataclasses.replace(r, packages=dataclasses.replace(r.packages, specs=specs))
    return build(r, out, OutputFormat.dir, progress=Progress(quiet=True)).path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 from payload/engine; v2: Version 2.0 and a third schema script."""
    base = tmp_path_factory.mktemp("engine-bundles")
    v2 = base / "payload-v2"
    shutil.copytree(ROOT / "payload/engine", v2)
    spec = (v2 / "engine.spec").read_text()
    (v2 / "engine.spec").write_text(re.sub(r"(?m)^Version:\s+1\.0$", "Version:        2.0",
                                           spec, count=1))
    (v2 / "0003_audit_log.sql").write_text(
        "-- engine schema, version 3\n"
        "CREATE TABLE audit_log (id serial PRIMARY KEY, message text NOT NULL);\n"
        "INSERT INTO audit_log (message) VALUES ('upgraded to 2.0');\n")
    return {"v1": _build(base / "v1", ROOT / "payload/engine"), "v2": _build(base / "v2", v2)}


def _root(where: Path, bundle: Path) -> Path:
    root = prepare_target_root(where / "root")
    cache = Path(str(bundle) + "-base")
    if not cache.exists():  # demo-base stands in for the target's distro
        from bundler.rpmbuild import build_specs
        build_specs([ROOT / "payload/demo/demo-base.spec"], cache, SDE)
    rpm_root(root, ["-i", "--nodeps", str(next(cache.glob("demo-base-*.rpm")))])
    return root


def _answers(path: Path, db: dict[str, str], name: str) -> Path:
    lines = ["[environment:default]"]
    lines += [f"{k}=str:{v}" if k != "DB/port" else f"{k}=int:{v}" for k, v in db.items()]
    lines += [f"SETUP_DB/database=str:{name}", f"SETUP_DB/user=str:{name}",
              f"SETUP/adminPassword=str:{ADMIN_PASSWORD}",
              "SETUP_PG/conf=str:/var/lib/pgsql/data/postgresql.conf"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def _install(bundle: Path, root: Path, action: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "installer", action, "--bundle", str(bundle),
            "--root", str(root), "--unattended", *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _tables(cluster: Cluster, db: str) -> dict[str, Any]:
    conn = cluster.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "ORDER BY 1")
            names = [r[0] for r in cur.fetchall()]
            out = {}
            for n in names:
                cur.execute(f'SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' '
                            f'ORDER BY t::text), \'\')) FROM "{n}" t')
                out[n] = cur.fetchone()
            return out
    finally:
        conn.close()


def _skip(rel: str) -> bool:
    return rel.startswith(("var/log", "var/lib/satchel/lock", "var/lib/rpm", "var/lib/dnf",
                           "var/cache/dnf", "var/lib/satchel/backup"))


def test_import_runs_setup_then_a_rerun_changes_nothing_then_v2_upgrades(
        bundles: dict[str, Path], tmp_path: Path, db_settings: dict[str, str],
        pg_cluster: Cluster, request: pytest.FixtureRequest) -> None:
    name = f"engine_{uuid.uuid4().hex[:10]}"
    request.addfinalizer(lambda: drop_database_and_role(pg_cluster, name, name))
    root = _root(tmp_path, bundles["v1"])
    pgconf = root / "var/lib/pgsql/data/postgresql.conf"
    pgconf.parent.mkdir(parents=True)
    pgconf.write_text("max_connections = 100\nshared_buffers = 128MB\n")
    answers = _answers(tmp_path / "answers.conf", db_settings, name)

    r = _install(bundles["v1"], root, "import", "--answers", str(answers))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "running setup" in r.stdout
    assert {n.rsplit("-", 2)[0] for n in installed(root)} >= {
        "engine", "engine-etl", "engine-notifier", "engine-tools", "engine-iso-files",
        "engine-jre"}
    # every plugin left its mark
    assert "kernel.shmmax" in (root / "etc/sysctl.d/10-engine.conf").read_text()
    assert (root / "etc/pki/engine/ca.pem").is_file()
    assert (root / "etc/pki/engine/keys/apache.key.nopass").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/engine/engine.conf.d/30-protocols.conf").is_file()
    assert f'ENGINE_FQDN="{FQDN}"' in (root / "etc/engine/engine.conf.d/30-protocols.conf"
                                       ).read_text()
    assert "max_connections = 150" in pgconf.read_text()
    assert (root / "etc/exports.d/engine.exports").is_file()
    assert (root / "etc/engine/engine-log-collector.conf").is_file()
    assert (root / "etc/systemd/system/multi-user.target.wants/engine.service").is_symlink()
    tables = _tables(pg_cluster, name)
    assert {"vdc_options", "storage_pool", "schema_version"} <= set(tables)
    assert "audit_log" not in tables
    for log in (root / "var/log/satchel").iterdir():
        assert ADMIN_PASSWORD not in log.read_text()

    before, db_before = tree(root, _skip), _tables(pg_cluster, name)
    r = _install(bundles["v1"], root, "setup", "--answers", str(answers))
    assert r.returncode == 0, r.stdout + r.stderr
    assert tree(root, _skip) == before
    assert _tables(pg_cluster, name) == db_before

    r = _install(bundles["v2"], root, "import", "--answers", str(answers))
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(n.startswith("engine-2.0-1") for n in installed(root))
    tables = _tables(pg_cluster, name)
    assert tables["audit_log"][0] == 1
    backups = list((root / "var/lib/satchel/backup/setup").glob(f"{name}-*.dump"))
    assert len(backups) == 1 and backups[0].stat().st_mode & 0o777 == 0o600
