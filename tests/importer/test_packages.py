"""The import's packages: a real dnf --installroot from a bundle repo into a test root."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bundler.dnf import installed
from installer.engine.journal import Journal
from installer.engine.state import StateRegistry
from installer.engine.transaction import Transaction
from installer.errors import RefusedError, SatchelError
from installer.restore import packages
from installer.restore.packages import InstallPackages, audit, plan, vercmp
from tests.rpmfixtures import CHAIN, demo_rpms, make_bundle, make_root

pytestmark = pytest.mark.rpm
__all__ = ["demo_rpms"]  # a fixture

BASE = "demo-base-9.0-1.noarch"


def _txn(root: Path, tmp: Path) -> Transaction:
    state_dir = tmp / "state"
    txn = Transaction(root, state_dir / "backup" / "run1",
                      lambda p, follow_last=True: root / str(p).lstrip("/"),
                      StateRegistry(state_dir, "import", "run1"), Journal(state_dir, "import"))
    txn.begin()
    return txn


def _tree(root: Path) -> list[str]:
    """Everything under root but dnf's logs."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not str(p.relative_to(root)).startswith("var/log"))


def _repo_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.repo")] + [
        p for p in (root / "etc").rglob("*") if "yum.repos.d" in str(p)]


@pytest.fixture
def bundle(demo_rpms: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    return make_bundle(tmp_path / "bundle", [demo_rpms])


def test_plan_install_undo_and_nothing_to_do(demo_rpms: Path, tmp_path: Path,
                                             bundle: tuple[Path, dict[str, Any]]) -> None:
    path, manifest = bundle
    root = make_root(tmp_path / "root", demo_rpms)
    before = _tree(root)
    p = plan(root, path, manifest)
    assert p.install == CHAIN and not (p.upgrade or p.downgrade or p.installed or p.other)
    assert not p.nothing_to_do
    assert _tree(root) == before  # the plan left no cache, no history, no scratch dir

    txn = _txn(root, tmp_path)
    el = InstallPackages(path, manifest)
    assert txn.append(el)
    assert installed(root) == sorted([BASE, *CHAIN])
    assert (root / "var/lib/demo/installed").read_text() == "demo-app 1.0-1\n"
    assert _repo_files(root) == []  # nothing points at the bundle's medium
    assert not list((root / "var/cache").rglob("*.rpm"))
    recs = el.records()
    assert [(r["kind"], r["name"], r["nevra"], r["how"]) for r in recs] == [
        ("package", n.split("-1.0")[0], n, "installed") for n in CHAIN]
    assert set(txn.state.packages()) == {"demo-app", "demo-common", "demo-lib"}
    assert audit(root, CHAIN) == []

    again = plan(root, path, manifest)
    assert again.nothing_to_do and again.installed == CHAIN and again.install == []
    el2 = InstallPackages(path, manifest, step_id="packages-2")
    assert txn.append(el2)
    assert el2.records() == []

    assert txn.rollback() == []
    assert installed(root) == [BASE]
    assert not (root / "etc/demo/app.conf").exists()


def test_audit_lists_a_changed_config_file(demo_rpms: Path, tmp_path: Path,
                                           bundle: tuple[Path, dict[str, Any]]) -> None:
    path, manifest = bundle
    root = make_root(tmp_path / "root", demo_rpms)
    _txn(root, tmp_path).append(InstallPackages(path, manifest))
    (root / "etc/demo/app.conf").write_text("listen = 0.0.0.0:80\n")
    lines = audit(root, CHAIN)
    assert len(lines) == 1 and lines[0].endswith(" c /etc/demo/app.conf")
    assert lines[0].startswith("S.5")


def test_a_requirement_the_target_lacks_is_refused_before_any_change(
        demo_rpms: Path, tmp_path: Path, bundle: tuple[Path, dict[str, Any]]) -> None:
    path, manifest = bundle
    root = make_root(tmp_path / "root", demo_rpms, with_base=False)
    before = _tree(root)
    with pytest.raises(RefusedError) as e:
        plan(root, path, manifest)
    msg = str(e.value)
    assert "nothing provides demo-base-release >= 9 needed by demo-app-1.0-1.noarch" in msg
    assert "/etc/demo-base-release" in msg
    txn = _txn(root, tmp_path)
    with pytest.raises(RefusedError):
        txn.append(InstallPackages(path, manifest))
    assert installed(root) == [] and txn.committed == []
    assert _tree(root) == before


def test_unsigned_refused_without_allow_unsigned(demo_rpms: Path, tmp_path: Path) -> None:
    path, manifest = make_bundle(tmp_path / "bundle", [demo_rpms], allow_unsigned=False)
    assert manifest["components"]["repo"]["allow_unsigned"] is False
    root = make_root(tmp_path / "root", demo_rpms)
    with pytest.raises(RefusedError) as e:
        plan(root, path, manifest)
    assert "unsigned packages in the bundle: " + ", ".join(CHAIN) in str(e.value)
    assert installed(root) == [BASE]


def test_gpg_options_for_signed_packages(tmp_path: Path) -> None:
    (tmp_path / "repo/keys").mkdir(parents=True)
    (tmp_path / "repo/keys/RPM-GPG-KEY-a").write_text("k")
    manifest = {"components": {"repo": {"packages": [
        {"name": "a", "version": "1", "release": "1", "arch": "noarch", "signed": True}]}}}
    assert packages.gpg_options(tmp_path, manifest) == [
        "--setopt=satchel.gpgcheck=1",
        f"--setopt=satchel.gpgkey={(tmp_path / 'repo/keys/RPM-GPG-KEY-a').as_uri()}"]


def test_an_upgrade_is_planned_and_its_undo_needs_manual_action(
        demo_rpms: Path, tmp_path: Path) -> None:
    from bundler.rpmbuild import build_specs

    spec = tmp_path / "demo-lib.spec"
    spec.write_text("Name: demo-lib\nVersion: 0.9\nRelease: 1\nSummary: old\nLicense: MIT\n"
                    "BuildArch: noarch\nProvides: demo-lib(api) = 1\n%description\nold\n"
                    "%install\nmkdir -p %{buildroot}/usr/lib/demo\n"
                    "echo old > %{buildroot}/usr/lib/demo/lib.sh\n%files\n/usr/lib/demo\n")
    old = tmp_path / "old"
    build_specs([spec], old, 1767225600)
    root = make_root(tmp_path / "root", demo_rpms)
    from bundler.dnf import rpm_root

    rpm_root(root, ["-i", "--nodeps", str(old / "demo-lib-0.9-1.noarch.rpm")])
    path, manifest = make_bundle(tmp_path / "bundle", [demo_rpms])
    p = plan(root, path, manifest)
    assert p.upgrade == [("demo-lib-1.0-1.noarch", "demo-lib-0.9-1.noarch")]
    assert p.install == ["demo-app-1.0-1.noarch", "demo-common-1.0-1.noarch"]
    txn = _txn(root, tmp_path)
    el = InstallPackages(path, manifest)
    txn.append(el)
    assert installed(root) == sorted([BASE, *CHAIN])
    assert {r["nevra"]: r["how"] for r in el.records()}["demo-lib-1.0-1.noarch"] == "upgraded"
    manual = txn.rollback()
    assert len(manual) == 1 and "demo-lib-1.0-1.noarch was upgraded from " \
        "demo-lib-0.9-1.noarch, reinstall demo-lib-0.9-1.noarch" in manual[0]
    assert installed(root) == [BASE, "demo-lib-1.0-1.noarch"]


@pytest.mark.parametrize("a, b, want", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("1.10", "1.9", 1), ("1.0~rc1", "1.0", -1),
    ("1.0^git1", "1.0", 1), ("1.0a", "1.0", 1), ("a", "1", -1), ("2.0.1", "2.0", 1),
    ("1.0^", "1.0~", 1), ("005", "5", 0),
])
def test_vercmp_matches_rpm(a: str, b: str, want: int) -> None:
    assert vercmp(a, b) == want
    assert vercmp(b, a) == -want


def test_missing_repodata_is_named(tmp_path: Path) -> None:
    manifest = {"target": {"version": "9"}, "components": {"repo": {
        "allow_unsigned": True, "packages": [
            {"name": "a", "version": "1", "release": "1", "arch": "noarch"}]}}}
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(SatchelError, match="no repodata"):
        plan(root, tmp_path, manifest)
    _ = pathlib


@pytest.fixture
def signed_rpms(demo_rpms: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The demo chain signed with a throw-away key, and that key (armored)."""
    gpg = shutil.which("gpg")
    if gpg is None or shutil.which("rpmsign") is None:
        pytest.skip("needs gpg and rpmsign")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    src = tmp_path / "signed"
    src.mkdir()
    for n in [*CHAIN, BASE]:
        shutil.copy(demo_rpms / f"{n}.rpm", src)
    try:
        subprocess.run([gpg, "--batch", "--passphrase", "", "--quick-gen-key",
                        "satchel test <t@example.invalid>", "rsa2048", "sign", "never"],
                       env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        subprocess.run(["rpmsign", "--define", "_gpg_name t@example.invalid",
                        "--define", f"__gpg {gpg}", "--addsign",
                        *[str(src / f"{n}.rpm") for n in CHAIN]],
                       env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        key = tmp_path / "RPM-GPG-KEY-test"
        key.write_bytes(subprocess.run([gpg, "--armor", "--export", "t@example.invalid"],
                                       env=env, check=True, capture_output=True).stdout)
        yield src, key
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)


def test_signed_packages_are_checked_with_the_bundle_keys(
        signed_rpms: tuple[Path, Path], demo_rpms: Path, tmp_path: Path) -> None:
    src, key = signed_rpms
    path, manifest = make_bundle(tmp_path / "bundle", [src], allow_unsigned=False)
    assert all(p["signed"] for p in manifest["components"]["repo"]["packages"])
    root = make_root(tmp_path / "root", demo_rpms)
    with pytest.raises(RefusedError, match="GPG") as e:  # no key shipped, none trusted
        plan(root, path, manifest)
    assert "baseurl" not in str(e.value)
    assert installed(root) == [BASE]
    (path / "repo/keys").mkdir()
    shutil.copy(key, path / "repo/keys")
    txn = _txn(root, tmp_path)
    txn.append(InstallPackages(path, manifest))
    now = installed(root)
    assert [n for n in now if not n.startswith("gpg-pubkey-")] == sorted([BASE, *CHAIN])
    assert len(now) == 5
    assert txn.rollback() == []
    assert installed(root) == [BASE]  # the imported key is gone too
