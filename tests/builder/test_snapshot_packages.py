"""Snapshot packages: a source root made by dnf from the demo repo, its rpmdb read
with the rpm bindings, its RPMs found again by header digest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bundler.components import rpm_repo
from bundler.dnf import dnf_installroot, installed
from bundler.rpmbuild import build_specs
from bundler.snapshot_packages import (
    base_packages,
    changed_config_files,
    find_rpms,
    installed_packages,
    select,
)
from installer.errors import InputError
from tests.rpmfixtures import CHAIN, DEMO_SPECS, SDE, make_bundle, make_root, recipe_ctx

pytestmark = pytest.mark.rpm

BASE = "demo-base-9.0-1.noarch"


@pytest.fixture
def source_root(demo_rpms: Path, tmp_path: Path) -> Path:
    """demo-base, then demo-app (and its chain) installed by dnf --installroot."""
    bundle, _ = make_bundle(tmp_path / "bundle", [demo_rpms])
    root = make_root(tmp_path / "source", demo_rpms)
    dnf_installroot(root, bundle / "repo", ["install", "demo-app"])
    assert installed(root) == sorted([BASE, *CHAIN])
    return root


def test_installed_selected_found_and_unchanged(source_root: Path, demo_rpms: Path) -> None:
    pkgs = installed_packages(source_root)
    assert [p.nevra for p in pkgs] == sorted([BASE, *CHAIN])
    assert all(len(p.sha256header) == 64 for p in pkgs)
    chosen = select(pkgs, everything=True, base=["demo-base"])
    assert [p.nevra for p in chosen] == CHAIN
    assert [p.nevra for p in select(pkgs, include=["demo-a*", "demo-lib"])] == [
        "demo-app-1.0-1.noarch", "demo-lib-1.0-1.noarch"]
    with pytest.raises(InputError, match="'nope'"):
        select(pkgs, include=["nope"])
    found = find_rpms(chosen, [demo_rpms])
    assert found.rpms == {n: demo_rpms / f"{n}.rpm" for n in CHAIN}
    assert found.missing == [] and found.warnings == []
    assert changed_config_files(source_root, chosen) == []


def test_an_edited_config_file_is_listed(source_root: Path) -> None:
    conf = source_root / "etc/demo/app.conf"
    conf.write_text(conf.read_text() + "workers = 4\n")
    (source_root / "usr/bin/demo-app").chmod(0o700)
    pkgs = installed_packages(source_root)
    assert changed_config_files(source_root, pkgs) == ["/etc/demo/app.conf", "/usr/bin/demo-app"]


def test_every_missing_rpm_is_named_at_once(source_root: Path, demo_rpms: Path,
                                            tmp_path: Path) -> None:
    src = tmp_path / "cache" / "deep"
    shutil.copytree(demo_rpms, src)
    (src / "demo-lib-1.0-1.noarch.rpm").unlink()
    (src / "demo-common-1.0-1.noarch.rpm").unlink()
    chosen = select(installed_packages(source_root), everything=True, base=["demo-base"])
    with pytest.raises(InputError) as e:
        find_rpms(chosen, [tmp_path / "cache"])
    msg = str(e.value)
    assert "demo-common-1.0-1.noarch, demo-lib-1.0-1.noarch" in msg
    assert str(tmp_path / "cache") in msg and "demo-app" not in msg
    found = find_rpms(chosen, [tmp_path / "cache"], allow_missing=True)
    assert list(found.rpms) == ["demo-app-1.0-1.noarch"]
    assert found.missing == ["demo-common-1.0-1.noarch", "demo-lib-1.0-1.noarch"]
    assert len(found.warnings) == 2 and "demo-lib-1.0-1.noarch" in found.warnings[1]


def test_a_different_build_of_the_same_nevra_is_refused(source_root: Path,
                                                        tmp_path: Path) -> None:
    other = tmp_path / "rebuilt"
    build_specs(DEMO_SPECS, other, SDE + 86400)
    chosen = select(installed_packages(source_root), include=["demo-app"])
    with pytest.raises(InputError) as e:
        find_rpms(chosen, [other])
    assert str(e.value).startswith(
        f"demo-app-1.0-1.noarch: {other / 'demo-app-1.0-1.noarch.rpm'} is a different build")


def test_build_from_runs_the_closure_check_and_createrepo(source_root: Path, demo_rpms: Path,
                                                         tmp_path: Path) -> None:
    pkgs = installed_packages(source_root)
    chosen = select(pkgs, everything=True, base=["demo-base"])
    found = find_rpms(chosen, [demo_rpms])
    ctx = recipe_ctx(tmp_path / "b1", [demo_rpms])
    section = rpm_repo.build_from(ctx, list(found.rpms.values()),
                                  base_packages(pkgs, ctx.recipe.packages.base))
    assert section is not None
    assert [p["nevra"] for p in section["packages"]] == CHAIN
    assert section["base_packages"] == [BASE]
    assert (ctx.staging.root / "repo/repodata/repomd.xml").is_file()
    # Without demo-lib and without the base, every unmet requirement is named.
    ctx2 = recipe_ctx(tmp_path / "b2", [demo_rpms], base=[])
    paths = [p for n, p in found.rpms.items() if not n.startswith("demo-lib")]
    with pytest.raises(InputError) as e:
        rpm_repo.build_from(ctx2, paths, base_packages(pkgs, []))
    assert "demo-app-1.0-1.noarch requires demo-lib(api) >= 1" in str(e.value)
    assert "demo-app-1.0-1.noarch requires demo-base-release >= 9" in str(e.value)
