"""`install import` killed with SIGKILL in the middle of its packages step (dnf's rpm
transaction running) or of its files step (a file set half staged, or half moved
into place), then run again: it must end in the same state as an uninterrupted
import of the same bundle — same tree, same rpmdb package set, same database, the
same state registry — and a third run must change nothing.

The kill lands at an exact point, without timing guesses: SATCHEL_STOP_AT makes the
run stop itself there with SIGSTOP (installer.restore.checkpoint; inside dnf, the
Lua %pre of the test package demo-pause does the same), the test waits for the
stopped process and kills the whole session. (The database step's kill is in
test_database_restore.py.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.dnf import installed
from bundler.output import OutputFormat
from bundler.pgcluster import Cluster
from bundler.progress import Progress
from installer.restore.pgfacts import table_facts
from tests.importer.helpers import (
    REPO,
    SDE,
    differences,
    import_argv,
    kill_at,
    make_root,
    run_import,
    snapshot,
    state_without_runs,
)

pytestmark = [pytest.mark.rpm, pytest.mark.root, pytest.mark.postgres, pytest.mark.slow]

RECIPE = f"""
[bundle]
name = "resume"
version = "1"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
source_date_epoch = {SDE}

[packages]
include = ["demo-app", "demo-pause"]
sources = ["rpms"]
base = ["demo-base"]
allow_unsigned = true

[[files]]
name = "config"
root = "tree"
paths = ["etc/demo", "var/lib/demo", "srv/demo"]

[secrets]
root = "pki"
paths = ["etc/pki/demo"]

[services]
enable = ["demo-app.service"]

[database]
names = ["{{name}}"]
roles = true
"""

SQL = """
CREATE TABLE items (id int PRIMARY KEY, name text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
"""


@dataclasses.dataclass
class Built:
    path: Path
    db: str
    role: str
    manifest: dict[str, Any]


def _drop(cluster: Cluster, db: str, role: str) -> None:
    for name in (db, f"{db}__satchel_new", f"{db}__satchel_old"):
        cluster.drop_database(name)
    cluster.run_sql("postgres", f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, rpms: Path,
          pg_cluster: Cluster) -> Iterator[Built]:
    """A bundle with packages, a file set of several directories, secrets, a
    service and a database (whose source is dropped once it is dumped)."""
    src = tmp_path_factory.mktemp("resume-src")
    shutil.copytree(rpms, src / "rpms", ignore=shutil.ignore_patterns("demo-base*"))
    shutil.copytree(REPO / "payload/demo/files", src / "tree")
    (src / "tree/etc/demo/app.conf").write_text("# restored by satchel\nport = 8080\n")
    for i in range(12):  # enough entries that a stop in the middle leaves some to do
        d = src / "tree/srv/demo" / f"d{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    os.chown(src / "tree/var/lib/demo/README", 65534, 65534)
    pki = src / "pki/etc/pki/demo"
    pki.mkdir(parents=True)
    (pki / "demo.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n")
    os.chmod(pki / "demo.key", 0o600)
    (pki / "demo.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a real cert\n")
    hexid = uuid.uuid4().hex[:8]
    db, role = f"resume_{hexid}", f"resume_app_{hexid}"
    cluster = pg_cluster
    cluster.run_sql("postgres", f"CREATE ROLE {role} LOGIN")
    cluster.create_database(db, owner=role)
    cluster.run_sql(db, f"SET ROLE {role};" + SQL)
    base_dir = src / "base"  # outside the bundle's sources: the target has it
    base_dir.mkdir()
    for f in rpms.glob("demo-base-*.rpm"):
        shutil.copy(f, base_dir)
    recipe = recipes.parse(src / "r.toml", RECIPE.format(name=db))
    assert recipe.database is not None
    recipe = dataclasses.replace(
        recipe, packages=dataclasses.replace(
            recipe.packages, sources=(*recipe.packages.sources, base_dir)),
        database=dataclasses.replace(
            recipe.database, host=cluster.host, port=cluster.port, user=cluster.superuser,
            passfile=cluster.passfile))
    path = build(recipe, src / "bundle", OutputFormat.dir, progress=Progress(quiet=True)).path
    _drop(cluster, db, role)
    manifest = json.loads((path / "manifest.json").read_text())
    try:
        yield Built(path, db, role, manifest)
    finally:
        _drop(cluster, db, role)


@pytest.fixture
def settings(pg_cluster: Cluster, tmp_path: Path) -> list[str]:
    line = pg_cluster.passfile.read_text().splitlines()[0]
    password = line.split(":", 4)[4].replace("\\:", ":").replace("\\\\", "\\")
    pwfile = tmp_path / "dbpass"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    out = []
    for k, v in (("DB/host", pg_cluster.host), ("DB/port", str(pg_cluster.port)),
                 ("DB/user", pg_cluster.superuser), ("DB/passwordFile", str(pwfile))):
        out += ["--set", f"{k}={v}"]
    return out


def _facts(cluster: Cluster, db: str) -> dict[str, Any]:
    conn = cluster.connect(db, autocommit=False)
    try:
        return table_facts(conn)
    finally:
        conn.close()


def _normal(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot with satchel's bookkeeping made comparable between runs: backups
    under their run's id (which differs) and the state registry (compared apart)."""
    out = {}
    for rel, value in snap.items():
        parts = rel.split("/")
        if rel.startswith("var/lib/satchel/backup/") and len(parts) > 4:
            parts[4] = "RUN"
        out["/".join(parts)] = value
    out.pop("var/lib/satchel/state.json", None)
    return out


def _mtimes(root: Path, manifest: dict[str, Any]) -> dict[str, int]:
    sets = manifest["components"]["filesets"]["sets"] + [manifest["components"]["secrets"]]
    return {rel: int(os.lstat(root / rel).st_mtime) for s in sets for rel in s["index"]}


@pytest.fixture(scope="module")
def reference(built: Built, rpms: Path, pg_cluster: Cluster,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What an uninterrupted import of the bundle leaves."""
    where = tmp_path_factory.mktemp("reference")
    pw = where / "dbpass"
    line = pg_cluster.passfile.read_text().splitlines()[0]
    pw.write_text(line.split(":", 4)[4].replace("\\:", ":").replace("\\\\", "\\") + "\n")
    os.chmod(pw, 0o600)
    root = make_root(where / "root", rpms)
    _drop(pg_cluster, built.db, built.role)
    r = run_import(built.path, root, "--set", f"DB/host={pg_cluster.host}",
                   "--set", f"DB/port={pg_cluster.port}",
                   "--set", f"DB/user={pg_cluster.superuser}",
                   "--set", f"DB/passwordFile={pw}", module=True)
    assert r.returncode == 0, r.stdout + r.stderr
    log = "".join(p.read_text() for p in (root / "var/log/satchel").glob("import-*.log"))
    assert f"audit: database {built.db}: the row counts of its 1 tables match" in log
    ref = {"tree": _normal(snapshot(root)), "rpms": installed(root),
           "state": state_without_runs(root), "mtimes": _mtimes(root, built.manifest),
           "db": _facts(pg_cluster, built.db)}
    _drop(pg_cluster, built.db, built.role)
    return ref


@pytest.mark.parametrize("stop_at", ["packages.dnf", "rpm:demo-pause", "database.restore",
                                     "files.stage@3", "files.commit@4"])
def test_kill_9_then_a_rerun_ends_as_an_uninterrupted_import(
        built: Built, reference: dict[str, Any], rpms: Path, pg_cluster: Cluster,
        settings: list[str], tmp_path: Path, stop_at: str) -> None:
    _drop(pg_cluster, built.db, built.role)
    root = make_root(tmp_path / "root", rpms)
    argv = import_argv(built.path, root, *settings, module=True)
    kill_at(argv, stop_at)
    journal_file = root / "var/lib/satchel/journal/import.json"
    # The file sets are staged beside dnf from early_misc on: a kill there may come
    # before the journal's first entry.
    journal = json.loads(journal_file.read_text()) \
        if journal_file.exists() or not stop_at.startswith("files.stage") else {}
    if stop_at.startswith("rpm:"):
        # Killed inside dnf's rpm transaction: the demo packages are in, demo-pause not.
        names = {n.rsplit("-", 2)[0] for n in installed(root)}
        assert {"demo-app", "demo-lib", "demo-common"} <= names
        assert "demo-pause" not in names
        assert "packages" in journal["started"]
    elif stop_at == "packages.dnf":  # about to start dnf: nothing installed yet
        assert len(installed(root)) == 1 and "packages" in journal["started"]
    elif stop_at == "database.restore":
        # Restoring in the background while dnf runs: the bundle's role is created.
        assert f"database:{built.db}" in journal["started"]
        assert pg_cluster.run_sql("postgres", "SELECT 1 FROM pg_roles WHERE rolname = "
                                  f"'{built.role}'") == [(1,)]
    elif stop_at.startswith("files.commit"):
        assert "files:config" in journal["started"]  # half of it moved into place
        assert (root / "etc/demo/app.conf").read_text().startswith("# restored by satchel")
        assert not (root / "srv/demo/d2/f11.txt").exists()

    r = run_import(built.path, root, *settings, module=True)
    assert r.returncode == 0, r.stdout + r.stderr
    if journal:  # else killed before the first change: there is nothing to resume
        assert "resuming" in r.stdout + r.stderr
    assert installed(root) == reference["rpms"]
    after = _normal(snapshot(root))
    assert differences(after, reference["tree"]) == set()
    assert state_without_runs(root) == reference["state"]
    assert _mtimes(root, built.manifest) == reference["mtimes"]
    assert _facts(pg_cluster, built.db) == reference["db"]
    assert not (root / "var/lib/satchel/journal/import.json").exists()

    third = run_import(built.path, root, *settings, module=True)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "nothing changed: the target already matched the bundle" in third.stdout + \
        third.stderr
    assert differences(_normal(snapshot(root)), after) == set()
    assert installed(root) == reference["rpms"]
