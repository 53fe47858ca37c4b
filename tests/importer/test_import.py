"""`install import` end to end: a bundle built from the demo payload (packages,
file sets, secrets, a service) restored into a temporary root whose rpmdb already
holds the base package, with real dnf --installroot. Databases are covered in
test_database_restore.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.dnf import installed, rpm_root
from bundler.output import OutputFormat
from bundler.progress import Progress
from bundler.rpmbuild import build_specs
from tests.treesnap import tree

REPO = Path(__file__).resolve().parents[2]
SDE = 1767225600

RECIPE = f"""
[bundle]
name = "imp"
version = "1"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
source_date_epoch = {SDE}

[packages]
include = ["demo-app"]
sources = ["rpms"]
base = ["demo-base"]
allow_unsigned = true

[[files]]
name = "config"
root = "tree"
paths = ["etc/demo", "var/lib/demo"]

[secrets]
root = "pki"
paths = ["etc/pki/demo"]

[services]
enable = ["demo-app.service"]
"""

OS_RELEASE = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'

pytestmark = [pytest.mark.rpm, pytest.mark.root]


@pytest.fixture(scope="session")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rpms")
    build_specs(sorted((REPO / "payload/demo").glob("*.spec")), out, SDE)
    return out


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, rpms: Path) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(rpms, src / "rpms", ignore=shutil.ignore_patterns("demo-base*"))
    shutil.copytree(REPO / "payload/demo/files", src / "tree")
    (src / "tree/etc/demo/app.conf").write_text("# restored by satchel\nport = 8080\n")
    os.chown(src / "tree/var/lib/demo/README", 65534, 65534)
    pki = src / "pki/etc/pki/demo"
    pki.mkdir(parents=True)
    (pki / "demo.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n")
    os.chmod(pki / "demo.key", 0o600)
    (pki / "demo.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a real cert\n")
    (src / "r.toml").write_text(RECIPE)
    # The base package lives outside the bundle's sources: the target has it.
    base_dir = src / "base"
    base_dir.mkdir()
    for f in rpms.glob("demo-base-*.rpm"):
        shutil.copy(f, base_dir)
    r = recipes.load(src / "r.toml")
    import dataclasses
    r = dataclasses.replace(r, packages=dataclasses.replace(
        r.packages, sources=(*r.packages.sources, base_dir)))
    return build(r, src / "bundle", OutputFormat.dir, progress=Progress(quiet=True)).path


@pytest.fixture
def root(tmp_path: Path, rpms: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "nobody:x:65534:65534:nobody:/:/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    base = next(rpms.glob("demo-base-*.rpm"))
    rpm_root(root, ["-i", "--nodeps", str(base)])
    return root


def snapshot(root: Path) -> Dict[str, Tuple[object, ...]]:
    """Every path of the root with type, mode, owner and content; satchel's own
    logs, and the rpmdb's and dnf's files (compared with rpm -qa instead), left out."""
    return tree(root, lambda rel: rel.startswith((
        "var/log/satchel", "var/lib/rpm", "var/lib/dnf", "var/cache/dnf", "var/log/dnf",
        "var/log/hawkey")))


def run_import(bundle: Path, root: Path, *extra: str,
               env: Dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    return subprocess.run([python, str(bundle / "install"), "import", "--root", str(root),
                           "--unattended", *extra], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_import_restores_packages_files_secrets_and_services(bundle: Path, root: Path) -> None:
    r = run_import(bundle, root)
    assert r.returncode == 0, r.stdout + r.stderr
    nevras = installed(root)
    assert {n.rsplit("-", 2)[0] for n in nevras} == {"demo-base", "demo-app", "demo-lib",
                                                     "demo-common"}
    conf = root / "etc/demo/app.conf"
    assert conf.read_text() == "# restored by satchel\nport = 8080\n"  # bundle beats rpm
    readme = root / "var/lib/demo/README"
    assert (readme.stat().st_uid, readme.stat().st_gid) == (65534, 65534)
    key = root / "etc/pki/demo/demo.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/systemd/system/multi-user.target.wants/demo-app.service").is_symlink()
    installer = root / "usr/libexec/satchel/install"
    assert installer.read_bytes() == (bundle / "install").read_bytes()
    assert installer.stat().st_mode & 0o777 == 0o755
    # Nothing points at the medium once it is unplugged.
    repos = root / "etc/yum.repos.d"
    assert not repos.exists() or not any(repos.iterdir())
    state = json.loads((root / "var/lib/satchel/state.json").read_text())
    assert "/etc/demo/app.conf" in json.dumps(state)
    logs = list((root / "var/log/satchel").glob("import-*.log"))
    assert logs and str(logs[0].relative_to(root)) in r.stdout + r.stderr


def test_second_import_changes_nothing(bundle: Path, root: Path) -> None:
    assert run_import(bundle, root).returncode == 0
    before, rpms_before = snapshot(root), installed(root)
    again = run_import(bundle, root)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout + again.stderr
    after = snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    # The state registry is rewritten (same content); nothing else may differ.
    assert changed <= {"var/lib/satchel/state.json"}, changed
    assert installed(root) == rpms_before


@pytest.mark.parametrize("stage", ["transaction_begin", "early_misc", "packages", "misc",
                                   "transaction_end", "closeup"])
def test_failure_at_any_stage_leaves_the_root_as_it_was(bundle: Path, root: Path,
                                                        stage: str) -> None:
    before, rpms_before = snapshot(root), installed(root)
    r = run_import(bundle, root, env={"SATCHEL_FAIL_AT": stage})
    assert r.returncode == 1, r.stdout + r.stderr
    assert installed(root) == rpms_before
    after = snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    # Only satchel's own bookkeeping directories may remain (empty of changes).
    assert all(k.startswith("var/lib/satchel") or k in ("var", "var/lib", "var/log")
               for k in changed), sorted(changed)
    assert not (root / "etc/demo").exists()


def test_wrong_distro_is_refused_naming_both_values(bundle: Path, root: Path) -> None:
    (root / "etc/os-release").write_text('ID="debian"\nVERSION_ID="12"\n')
    before = snapshot(root)
    r = run_import(bundle, root)
    assert r.returncode == 3
    assert "'rhel'" in r.stderr and "'debian'" in r.stderr
    assert "'9'" in r.stderr and "'12'" in r.stderr
    assert installed(root) == [n for n in installed(root) if n.startswith("demo-base")]
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith("var")} == \
           {k: v for k, v in before.items() if not k.startswith("var")}


def test_damaged_bundle_is_refused_naming_the_file(bundle: Path, root: Path,
                                                    tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "files/config.tar.zst").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "files/config.tar.zst").write_bytes(bytes(data))
    r = run_import(copy, root)
    assert r.returncode == 2
    assert "files/config.tar.zst" in r.stderr
    assert not (root / "etc/demo").exists()


def test_dry_run_shows_the_plan_and_changes_nothing(bundle: Path, root: Path) -> None:
    before = snapshot(root)
    r = run_import(bundle, root, "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "install demo-app-1.0-1.noarch" in out
    assert "files config:" in out and "to create" in out
    assert "service demo-app.service: enable" in out
    assert snapshot(root) == before


def test_a_missing_base_requirement_is_named_before_any_change(bundle: Path,
                                                               tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    (bare / "etc").mkdir(parents=True)
    (bare / "etc/os-release").write_text(OS_RELEASE)
    r = run_import(bundle, bare)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "demo-base-release" in r.stderr or "demo-base-sh" in r.stderr
    assert not (bare / "etc/demo").exists()


def test_help_documents_the_answer_keys_and_exit_codes() -> None:
    import contextlib
    import io

    from installer import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["import", "--help"]) == 0
    text = out.getvalue()
    for key in ("IMPORT/replaceDb", "IMPORT/secretsPassphraseFile", "CORE/confirm"):
        assert key in text
    assert "3  refused by validation" in text
