"""`install hooks` from a real bundle (recipes/vdsm-host.toml) into test roots with
an rpmdb, real dnf and rpm: lists chosen by os-release, hooks 0755 root, the
driverdeploy plugin at its stages, re-runs, rollback, later runs from the target."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from bundler.dnf import installed
from installer.bundle import verify_dir
from installer.errors import EXIT_FAILED, EXIT_OK
from tests.hooks.conftest import (
    BASE,
    DEBIAN,
    DRIVER,
    FEDORA,
    PAYLOAD,
    ROCKY,
    iter_files,
    run_hooks,
    snapshot,
)

pytestmark = pytest.mark.rpm

HOOKS = ("before_vm_start/50_satchel_demo", "after_vm_destroy/50_satchel_demo")
LIB, COMMON = "demo-lib-1.0-1.noarch", "demo-common-1.0-1.noarch"
CONF = "etc/vdsm/vdsmdummy.conf"
PLUGIN_COPY = "usr/share/satchel/hook-plugins/driverdeploy"


def _events(log: Path) -> list[str]:
    """The events the engine ran, in order (from the run's log)."""
    names = []
    for line in log.read_text().splitlines():
        m = re.search(r"satchel\.engine: {3}(\S+)$", line)
        if m:
            names.append(m.group(1))
    return names


def _check_hooks(root: Path) -> None:
    for rel in HOOKS:
        path = root / "usr/libexec/vdsm/hooks" / rel
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755, rel
        assert (st.st_uid, st.st_gid) == (0, 0)
        assert path.read_bytes() == (PAYLOAD / "hooks.d" / rel).read_bytes()


def test_rocky_uses_every_matching_list_and_a_rerun_changes_nothing(
        vdsm_bundle: Path, new_root: Any) -> None:
    root = new_root(ROCKY)
    before = snapshot(root)
    code, _, out = run_hooks(root, vdsm_bundle, dry_run=True)
    assert code == EXIT_OK, out
    assert snapshot(root) == before
    for rel in HOOKS:
        assert f"hook {rel} -> /usr/libexec/vdsm/hooks/{rel} (0755, root)" in out
    assert "package demo-common from the bundle's repo" in out
    assert "package demo-lib from the bundle's repo" in out
    assert "plugin driverdeploy: packages driverdeploy.packages" in out
    assert "plugin driverdeploy: misc driverdeploy.misc" in out
    assert out.index("driverdeploy.packages") < out.index("driverdeploy.misc")

    code, runner, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_OK, out
    # rocky is like rhel and fedora: both lists (demo-lib pulls demo-common too).
    assert installed(root) == sorted([BASE, COMMON, LIB, DRIVER])
    _check_hooks(root)
    # The plugin ran in packages (its RPM) then misc (a conf made from that RPM),
    # after the lists' packages, as the engine ordered it with the built-in events.
    events = _events(runner.log_path)  # type: ignore[arg-type]
    order = ["hooks.packages", "driverdeploy.packages", "hooks.files", "hooks.plugins",
             "driverdeploy.misc"]
    assert [e for e in events if e in order] == order
    assert (root / CONF).read_text().endswith("driver = vdsmdummy-driver 1.0-1\n")
    # The target's copy of the plugin is the bundle's, byte for byte.
    bundled = vdsm_bundle / "hooks/vdsm/plugins/driverdeploy"
    assert list(iter_files(root / PLUGIN_COPY)) == list(iter_files(bundled)) == [
        "__init__.py", f"{DRIVER}.rpm"]
    for rel in iter_files(bundled):
        assert (root / PLUGIN_COPY / rel).read_bytes() == (bundled / rel).read_bytes()
    # Everything is in the state registry.
    state = json.loads((root / "var/lib/satchel/state.json").read_text())["actions"]["hooks"]
    assert {f"/usr/libexec/vdsm/hooks/{h}" for h in HOOKS} | {
        f"/{PLUGIN_COPY}/__init__.py", f"/{PLUGIN_COPY}/{DRIVER}.rpm", f"/{CONF}"
    } <= set(state["files"])
    assert set(state["packages"]) >= {"demo-lib", "vdsmdummy-driver"}
    assert verify_dir(vdsm_bundle).ok  # loading the plugin left no __pycache__ there

    after = snapshot(root)
    code, _, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_OK, out
    assert snapshot(root) == after


def test_a_fedora_host_uses_the_fedora_list_only(vdsm_bundle: Path, new_root: Any) -> None:
    root = new_root(FEDORA)
    code, _, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_OK, out
    assert installed(root) == sorted([BASE, COMMON, DRIVER])
    _check_hooks(root)


def test_no_list_for_the_distro_is_said_and_hooks_are_installed(
        vdsm_bundle: Path, new_root: Any) -> None:
    root = new_root(DEBIAN)
    code, _, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_OK, out
    assert "no packages.d list for this distro (debian; lists: hooks.fedora, hooks.rhel)" in out
    assert installed(root) == sorted([BASE, DRIVER])
    _check_hooks(root)


@pytest.mark.parametrize("stage", ["misc", "closeup"])
def test_an_injected_failure_leaves_the_root_as_it_was(
        vdsm_bundle: Path, new_root: Any, monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    root = new_root(ROCKY)
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    code, _, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_FAILED, out
    assert f"failure injected at stage {stage}" in out and "rolled back" in out
    assert snapshot(root) == before
    assert installed(root) == [BASE]


def test_a_later_run_without_the_bundle_runs_the_copy_on_the_target(
        vdsm_bundle: Path, new_root: Any) -> None:
    root = new_root(ROCKY)
    code, _, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_OK, out
    rpm_copy = root / PLUGIN_COPY / f"{DRIVER}.rpm"
    # The copy is what runs now: it reinstalls its driver and rewrites its conf.
    os.unlink(root / CONF)
    from bundler.dnf import rpm_root

    rpm_root(root, ["-e", "vdsmdummy-driver"])
    code, runner, out = run_hooks(root, None, dry_run=True)
    assert code == EXIT_OK, out
    assert "running the hook plugins installed on this host (/usr/share/satchel/hook-plugins)" \
        in out
    assert "plugin driverdeploy: packages driverdeploy.packages" in out
    code, runner, out = run_hooks(root, None)
    assert code == EXIT_OK, out
    assert f"-U {rpm_copy}" in runner.log_path.read_text()  # type: ignore[union-attr]
    assert DRIVER in installed(root) and (root / CONF).exists()
    assert not list((root / PLUGIN_COPY).rglob("__pycache__"))
    after = snapshot(root)
    assert run_hooks(root, None)[0] == EXIT_OK
    assert snapshot(root) == after


def test_a_file_the_bundles_plugin_no_longer_has_is_removed(
        vdsm_bundle: Path, new_root: Any) -> None:
    root = new_root(FEDORA)
    stale = root / PLUGIN_COPY / "old-driver-0.9.rpm"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    code, _, out = run_hooks(root, vdsm_bundle)
    assert code == EXIT_OK, out
    assert not stale.exists()
    assert list(iter_files(root / PLUGIN_COPY)) == ["__init__.py", f"{DRIVER}.rpm"]
