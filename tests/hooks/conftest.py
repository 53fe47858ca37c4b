"""Fixtures for vdsm hooks: bundles built by the real pipeline (with the hooks
component added, as the pipeline will), test roots with an rpmdb and os-release,
and in-process runs of `install hooks`."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from bundler import build as pipeline
from bundler import recipe as recipes
from bundler.components import hooks as hooks_component
from bundler.dnf import installed
from bundler.output import OutputFormat
from bundler.progress import Progress
from installer import engine
from tests.rpmfixtures import demo_rpms, make_root
from tests.treesnap import tree

__all__ = ["demo_rpms"]  # a fixture, re-exported for the tests here

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = REPO / "payload" / "vdsm"
RECIPE = REPO / "recipes" / "vdsm-host.toml"
ROCKY = 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
FEDORA = 'ID=fedora\nVERSION_ID=40\n'
DEBIAN = 'ID=debian\nVERSION_ID="12"\n'
BASE = "demo-base-9.0-1.noarch"
DRIVER = "vdsmdummy-driver-1.0-1.noarch"


def _with_hooks(component: Any) -> Any:
    """The pipeline's components with the hooks component replaced by `component`."""
    original = pipeline._components

    def components(*args: Any, **kwargs: Any) -> list[tuple[str, Any]]:
        return [(name, component if name == "hooks" else module)
                for name, module in original(*args, **kwargs)]

    return components


def build_bundle(recipe_path: Path, out: Path, component: Any = hooks_component,
                 cache: Optional[Path] = None) -> Path:
    """Build `recipe_path`, with `component` standing in for the hooks component."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "_components", _with_hooks(component))
        if cache is not None:
            mp.setenv("XDG_CACHE_HOME", str(cache))
        result = pipeline.build(recipes.load(recipe_path), out, OutputFormat("dir"),
                                progress=Progress(quiet=True))
    return result.path


def write_recipe(where: Path, payload: Path, packages: bool = True) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    lines = ['[bundle]', 'name = "hooks-test"', 'version = "1"', 'distro = "rhel"',
             'distro_version = "9"', 'source_date_epoch = 1767225600']
    if packages:
        lines += ['[packages]', f'specs = ["{REPO}/payload/demo/*.spec"]',
                  'include = ["demo-lib", "demo-common"]', 'base = ["demo-base"]',
                  'allow_unsigned = true']
    lines += ['[hooks]', f'vdsm = "{payload}"', '']
    path = where / "recipe.toml"
    path.write_text("\n".join(lines))
    return path


def copy_payload(dest: Path, lists: bool = True) -> Path:
    shutil.copytree(PAYLOAD, dest, symlinks=True)
    if not lists:
        shutil.rmtree(dest / "packages.d")
    return dest


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def vdsm_bundle(tmp_path_factory: pytest.TempPathFactory, build_cache: Path) -> Path:
    """recipes/vdsm-host.toml, built as it is."""
    return build_bundle(RECIPE, tmp_path_factory.mktemp("vdsm") / "bundle", cache=build_cache)


@pytest.fixture
def bundle_copy(vdsm_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the vdsm bundle (for tests that damage it)."""
    return Path(shutil.copytree(vdsm_bundle, tmp_path / "bundle", symlinks=True))


@pytest.fixture
def new_root(demo_rpms: Path, tmp_path: Path) -> Any:
    """new_root(os_release) -> a root with demo-base installed and that os-release."""
    count = [0]

    def make(os_release: str = ROCKY) -> Path:
        count[0] += 1
        root = make_root(tmp_path / f"root{count[0]}", demo_rpms)
        (root / "etc/os-release").write_text(os_release)
        return root

    return make


def run_hooks(root: Path, bundle: Optional[Path], **kw: Any) -> tuple[int, engine.Runner, str]:
    out = io.StringIO()
    runner = engine.Runner("hooks", root=root, bundle=bundle, unattended=True,
                           stdout=out, stderr=out, stdin=io.StringIO(""), **kw)
    code = runner.run()
    return code, runner, out.getvalue()


# The engine's own log and state directories, which a run creates and keeps even
# when it rolls back (the log of a failed run must survive it).
ENGINE_DIRS = ("var/log", "var/log/satchel", "var/lib/satchel")


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under root (type, content, mode, owner), plus the rpmdb as
    `rpm -qa`; the engine's log/state directories, logs, lock and journal are left
    out (its state.json is kept), and so are the rpmdb's own files, compared
    through rpm -qa instead. dnf's logs and history are in."""
    def skip(rel: str) -> bool:
        return rel in ENGINE_DIRS or rel.startswith(("var/log/satchel/", "var/lib/rpm/")) or (
            rel.startswith("var/lib/satchel/") and rel != "var/lib/satchel/state.json")

    out = tree(root, skip)
    out["rpm -qa"] = tuple(installed(root))
    return out


def iter_files(directory: Path) -> Iterator[str]:
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            yield p.relative_to(directory).as_posix()
