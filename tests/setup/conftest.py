"""Fixtures for the setup tests: the engine-like appliance (payload/engine) installed
with rpm into a temporary root, its [setup] section (recipes/engine.toml) put where
a previous setup would keep it, a real PostgreSQL cluster, and a runner.

    def test_x(engine_root, setup_config, run_setup, db_settings): ...
        setup_config(engine_root, {"app": "engine", "sysctl": {...}})
        code, runner, out = run_setup(engine_root, db_settings)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import shutil
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bundler.dnf import rpm_root
from bundler.pgcluster import Cluster
from bundler.rpmbuild import build_specs
from installer import engine
from installer.plugins.setup import _config
from tests.rpmfixtures import SDE

ROOT = Path(__file__).resolve().parents[2]
ENGINE_RECIPE = ROOT / "recipes" / "engine.toml"
SPECS = [ROOT / "payload" / "demo" / "demo-base.spec", ROOT / "payload" / "engine" / "engine.spec"]
FQDN = "engine.example.test"


def engine_section() -> dict[str, Any]:
    """A fresh copy of recipes/engine.toml's [setup] section."""
    with ENGINE_RECIPE.open("rb") as f:
        return copy.deepcopy(tomllib.load(f)["setup"])


@pytest.fixture(scope="session")
def engine_rpms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """demo-base and the engine appliance's RPMs (built once per session)."""
    out = tmp_path_factory.mktemp("engine-rpms")
    build_specs(SPECS, out, SDE)
    return out


def make_engine_root(root: Path, rpms: Path, exclude: tuple[str, ...] = ()) -> Path:
    """prepare_target_root, then demo-base + every engine package (but `exclude`)
    installed with rpm into its rpmdb (/var/lib/rpm)."""
    prepare_target_root(root)
    files = sorted(str(p) for p in rpms.glob("*.rpm")
                   if not any(p.name.startswith(x + "-") and p.name[len(x) + 1].isdigit()
                              for x in exclude))
    rpm_root(root, ["-i", *files])
    return root


def prepare_target_root(root: Path) -> Path:
    """A target root's base files: os-release (rhel 9), passwd/group with root and
    vdsm/kvm (36), a host name, an SSH host key, /root."""
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID="rhel"\nVERSION_ID="9.4"\n')
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "vdsm:x:36:36:vdsm:/var/lib/vdsm:/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\nkvm:x:36:vdsm\n")
    (root / "etc/hostname").write_text(FQDN + "\n")
    (root / "root").mkdir(mode=0o550)
    # A fixed RSA public key (the fingerprint is computed by setup, not read from here).
    (root / "etc/ssh/ssh_host_rsa_key.pub").write_text(SSH_PUB + "\n")
    return root


@pytest.fixture(scope="session")
def engine_root_template(engine_rpms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_engine_root(tmp_path_factory.mktemp("engine-template") / "root", engine_rpms)


@pytest.fixture
def engine_root(engine_root_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the engine root for one test."""
    root = tmp_path / "root"
    shutil.copytree(engine_root_template, root, symlinks=True)
    return root


@pytest.fixture
def setup_config() -> Callable[[Path, Mapping[str, Any]], Path]:
    """Write a [setup] section where a previous setup keeps it (no bundle needed)."""
    def write(root: Path, table: Mapping[str, Any]) -> Path:
        path = root / _config.CONFIG_COPY.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps(dict(table), indent=1))
        path.chmod(0o600)
        return path
    return write


@pytest.fixture
def db_settings(pg_cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    """Answers for the admin connection to the test cluster (password from a 0600 file)."""
    pwfile = tmp_path / "db-admin-password"
    password = pg_cluster.passfile.read_text().rstrip("\n").rsplit(":", 1)[1]
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    return {"DB/host": pg_cluster.host, "DB/port": str(pg_cluster.port),
            "DB/user": pg_cluster.superuser, "DB/passwordFile": str(pwfile)}


RunSetup = Callable[..., tuple[int, engine.Runner, str]]


@pytest.fixture
def run_setup() -> RunSetup:
    """run_setup(root, settings, **runner_kw) -> (exit code, runner, output)."""
    def run(root: Path, settings: Mapping[str, str] | None = None,
            **kw: Any) -> tuple[int, engine.Runner, str]:
        out = io.StringIO()
        kw.setdefault("unattended", True)
        kw.setdefault("stdin", io.StringIO(""))
        runner = engine.Runner("setup", root=root, groups=("core", "setup"),
                               settings=dict(settings or {}), stdout=out, stderr=out, **kw)
        code = runner.run()
        return code, runner, out.getvalue()
    return run


@pytest.fixture
def db_names(pg_cluster: Cluster, drop_databases: list[str]) -> Iterator[dict[str, str]]:
    """SETUP_DB/database and SETUP_DB/user unique to the test; both dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    out = {"SETUP_DB/database": f"engine_{tag}", "SETUP_DB/user": f"engine_{tag}"}
    drop_databases.append(out["SETUP_DB/database"])
    yield out
    pg_cluster.drop_database(out["SETUP_DB/database"] + "_check")
    drop_database_and_role(pg_cluster, out["SETUP_DB/database"], out["SETUP_DB/user"])


def drop_role(pg: Cluster, role: str) -> None:
    pg.run_sql("postgres", f'DROP ROLE IF EXISTS "{role}"')


def drop_database_and_role(pg: Cluster, database: str, role: str) -> None:
    pg.drop_database(database)
    drop_role(pg, role)


def skip_engine_state(rel: str) -> bool:
    """Tree comparisons leave out the engine's own: logs, the lock, its backups."""
    return rel == "var/log" or rel.startswith(("var/log/satchel", "var/lib/satchel/backup",
                                               "var/lib/satchel/lock"))


@pytest.fixture
def drop_databases(pg_cluster: Cluster) -> Iterator[list[str]]:
    """Names appended to this list are dropped (with their owner roles) after the test."""
    names: list[str] = []
    yield names
    for name in names:
        pg_cluster.drop_database(name)


def _ssh_rsa_public_key() -> str:
    """A well-formed ssh-rsa public key line from fixed numbers (deterministic)."""
    def string(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b
    def mpint(v: int) -> bytes:  # RFC 4251: big-endian, a 0 byte only when the top bit is set
        raw = v.to_bytes((v.bit_length() + 7) // 8, "big")
        return b"\0" + raw if raw[0] & 0x80 else raw
    n = int.from_bytes(hashlib.sha256(b"satchel test host key").digest() * 8, "big") | 1
    blob = (string(b"ssh-rsa") + string((65537).to_bytes(3, "big"))
            + string(mpint(n)))
    return "ssh-rsa " + base64.b64encode(blob).decode() + " root@" + FQDN


SSH_PUB = _ssh_rsa_public_key()
