"""Not enough disk space for the plan: the import refuses at validation, before any
change, naming the mount point, what the plan needs and what is available. Tested
with real small tmpfs mounts, as the --root itself and inside the root."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.dnf import installed
from bundler.output import OutputFormat
from bundler.progress import Progress
from installer.restore.space import MiB, SpaceNeeds
from tests.importer.helpers import OS_RELEASE, SDE, differences, make_root, run_import, snapshot

pytestmark = [pytest.mark.root]

BIG = 3 * MiB

FILES_RECIPE = f"""
[bundle]
name = "space"
version = "1"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
source_date_epoch = {SDE}

[[files]]
name = "data"
root = "tree"
paths = ["srv/data"]
"""


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                    str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def _unchanged(before: dict, after: dict) -> set:
    """What changed, leaving out the run's own lock and state directory."""
    return {k for k in differences(before, after) if not k.startswith("var/lib/satchel")
            and k not in ("var", "var/lib", "var/log")}


@pytest.mark.rpm
def test_a_too_small_root_is_refused_naming_its_mount_point(bundle: Path, rpms: Path,
                                                           tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "2m") as mnt:
        root = make_root(mnt, rpms)
        before, rpms_before = snapshot(root), installed(root)
        r = run_import(bundle, root)
        out = r.stdout + r.stderr
        assert r.returncode == 3, out
        assert "not enough disk space for this import" in out
        assert f"{mnt}: the plan needs" in out and "MiB available" in out
        assert installed(root) == rpms_before
        assert _unchanged(before, snapshot(root)) == set()
        # refused while dnf's test transaction ran beside the plans: it was waited
        # for, and its scratch directory removed
        assert not list((root / "var/lib/satchel").glob(".dnf-*"))


@pytest.fixture(scope="module")
def big_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle whose one file set holds a 3 MiB file under /srv/data."""
    src = tmp_path_factory.mktemp("space-src")
    data = src / "tree/srv/data"
    data.mkdir(parents=True)
    (data / "blob").write_bytes(os.urandom(BIG))  # does not compress
    (data / "small.txt").write_text("small\n")
    recipe = recipes.parse(src / "r.toml", FILES_RECIPE)
    return build(recipe, src / "bundle", OutputFormat.dir, progress=Progress(quiet=True)).path


def _bare_root(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE)
    return root


def test_a_too_small_mount_inside_the_root_is_refused_then_a_big_enough_one_works(
        big_bundle: Path, tmp_path: Path) -> None:
    root = _bare_root(tmp_path / "root")
    with tmpfs(root / "srv/data", "2m") as mnt:
        before = snapshot(root)
        r = run_import(big_bundle, root)
        out = r.stdout + r.stderr
        assert r.returncode == 3, out
        # Needed: the 3 MiB file plus the margin; available: about 2 MiB.
        assert f"{mnt}: the plan needs 7.0 MiB (3.0 MiB to write, 4.0 MiB margin), " \
               "2.0 MiB available" in out, out
        assert str(root) + ":" not in out  # the root's own file system has room
        assert _unchanged(before, snapshot(root)) == set()
        assert not any(mnt.iterdir())
    with tmpfs(root / "srv/data", "16m") as mnt:
        r = run_import(big_bundle, root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (mnt / "blob").stat().st_size == BIG


def test_space_needs_are_summed_per_file_system(tmp_path: Path) -> None:
    root = _bare_root(tmp_path / "root")
    with tmpfs(root / "mnt", "1m") as mnt:
        (root / "link").symlink_to("/mnt")  # followed inside the root, as on the target
        needs = SpaceNeeds(root)
        needs.add("/link/a", 600 << 10)
        needs.add(mnt / "b", 600 << 10)
        needs.add("/etc/new/deeper/c", 10)  # nearest existing ancestor: /etc
        problems = needs.problems()
        assert len(problems) == 1 and problems[0].startswith(f"{mnt}: the plan needs 5.2 MiB")
        assert needs.same_fs("/link/x", mnt / "y") and not needs.same_fs("/etc/x", "/mnt/y")
