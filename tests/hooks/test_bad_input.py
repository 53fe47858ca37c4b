"""Bad hook sets: refused by the builder when the bundle is made, and by the
installer (damaged or hand-made bundles) before any change, with the name of what
is wrong."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import pytest

from bundler import recipe as recipes
from bundler.components import hooks as hooks_component
from installer.errors import EXIT_REFUSED, EXIT_USAGE, InputError
from installer.plugins.hooks import validate_recipe_section
from installer.plugins.hooks._layout import check_lists, scan
from tests.hooks.conftest import (
    FEDORA,
    ROCKY,
    build_bundle,
    copy_payload,
    run_hooks,
    snapshot,
    write_recipe,
)

EVIL = "hooks.d/before_vm_start/50..evil"


def _build(tmp_path: Path, payload: Path, packages: bool = False, component: Any = None,
           cache: Optional[Path] = None) -> Path:
    recipe = write_recipe(tmp_path / "recipe", payload, packages=packages)
    return build_bundle(recipe, tmp_path / "out", component or hooks_component, cache=cache)


# --- the recipe section and the layout ------------------------------------------------


def test_the_recipe_section_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert validate_recipe_section({"vdsm": "../payload/vdsm"}) == []
    monkeypatch.setitem(recipes.PLUGIN_SECTIONS, "hooks", validate_recipe_section)
    text = ('[bundle]\nname = "t"\nversion = "1"\ndistro = "rhel"\ndistro_version = "9"\n'
            '[hooks]\nvdsm = 3\nkvm = "x"\n')
    with pytest.raises(recipes.RecipeError) as e:
        recipes.parse(Path("r.toml"), text)
    assert e.value.problems == [
        "r.toml: hooks.kvm: unknown key (the hook set is named 'vdsm')",
        "r.toml: hooks.vdsm: expected a directory path (a string), got int"]


def test_scan_names_every_problem(tmp_path: Path) -> None:
    d = copy_payload(tmp_path / "set")
    (d / EVIL).write_text("#!/bin/sh\n")
    (d / "hooks.d/before_vm_start/.hidden").write_text("x")
    (d / "hooks.d/after_vm_destroy/60_link").symlink_to("50_satchel_demo")
    os.mkfifo(d / "hooks.d/after_vm_destroy/70_fifo")
    (d / "hooks.d/stray").write_text("not a hook point")
    (d / "packages.d/nodistro").write_text("demo-lib\n")
    (d / "packages.d/bad.rhel").write_text("demo-lib demo-common\n")
    (d / "plugins/empty").mkdir()
    (d / "README").write_text("x")
    _, problems = scan(d)
    assert problems == [
        "README: unknown entry (a hook set holds hooks.d, packages.d, plugins)",
        "hooks.d/after_vm_destroy/60_link: a hook must be a regular file, this is a symlink",
        "hooks.d/after_vm_destroy/70_fifo: a hook must be a regular file, "
        "this is a device, fifo or socket",
        "hooks.d/before_vm_start/.hidden: hook file is a name with a leading dot",
        f"{EVIL}: hook file is a name with '..'",
        "hooks.d/stray: expected a hook point directory, found a regular file",
        "packages.d/bad.rhel:1: 'demo-lib demo-common' is not a package name "
        "(one package name a line)",
        "packages.d/nodistro: a list is named <name>.<distro> (hooks.rhel)",
        "plugins/empty: no Python module: a plugin folder needs an __init__.py defining "
        "class Plugin(engine.PluginBase)",
    ]


def test_check_lists_names_what_the_bundle_does_not_carry(tmp_path: Path) -> None:
    d = copy_payload(tmp_path / "set")
    (d / "packages.d/hooks.rhel").write_text("# c\n\ndemo-lib  # why\nghost\n")
    assert check_lists(d, ["demo-lib", "demo-common"]) == [
        "packages.d/hooks.rhel: ghost is not carried by the bundle"]
    assert check_lists(d, ["demo-lib", "demo-common", "ghost"]) == []


# --- the builder ------------------------------------------------------------------------


def test_the_builder_refuses_bad_names_and_files_before_writing(tmp_path: Path) -> None:
    d = copy_payload(tmp_path / "set", lists=False)
    (d / EVIL).write_text("#!/bin/sh\n")
    (d / "hooks.d/after_vm_destroy/60_link").symlink_to("50_satchel_demo")
    with pytest.raises(InputError) as e:
        _build(tmp_path, d)
    assert f"{EVIL}: hook file is a name with '..'" in e.value.message
    assert "60_link: a hook must be a regular file, this is a symlink" in e.value.message
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.staging-*"))


@pytest.mark.rpm
def test_the_builder_refuses_a_list_naming_a_package_not_in_the_bundle(
        tmp_path: Path, build_cache: Path) -> None:
    d = copy_payload(tmp_path / "set")
    (d / "packages.d/hooks.rhel").write_text("demo-lib\nghost\n")
    with pytest.raises(InputError) as e:
        _build(tmp_path, d, packages=True, cache=build_cache)
    assert "packages.d/hooks.rhel: ghost is not carried by the bundle" in e.value.message
    assert not (tmp_path / "out").exists()


@pytest.mark.rpm
def test_the_bundle_layout(vdsm_bundle: Path) -> None:
    files = sorted(p.relative_to(vdsm_bundle).as_posix()
                   for p in (vdsm_bundle / "hooks").rglob("*") if p.is_file())
    assert files == [
        "hooks/vdsm/hooks.d/after_vm_destroy/50_satchel_demo",
        "hooks/vdsm/hooks.d/before_vm_start/50_satchel_demo",
        "hooks/vdsm/packages.d/hooks.fedora",
        "hooks/vdsm/packages.d/hooks.rhel",
        "hooks/vdsm/plugins/driverdeploy/__init__.py",
        "hooks/vdsm/plugins/driverdeploy/vdsmdummy-driver-1.0-1.noarch.rpm",
    ]
    assert os.stat(vdsm_bundle / files[0]).st_mode & 0o777 == 0o755  # modes kept
    sums = (vdsm_bundle / "SHA256SUMS").read_text()
    assert all(f"  {f}\n" in sums for f in files)
    import json

    section = json.loads((vdsm_bundle / "manifest.json").read_text())["components"]["hooks"]
    assert section["vdsm"]["lists"]["hooks.rhel"] == {"distro": "rhel",
                                                      "packages": ["demo-lib"]}
    assert section["vdsm"]["plugins"]["driverdeploy"]["built"] == [
        "vdsmdummy-driver-1.0-1.noarch.rpm"]


# --- the installer ----------------------------------------------------------------------


@pytest.mark.rpm
def test_a_plugin_that_fails_to_import_is_named_and_nothing_changes(
        tmp_path: Path, new_root: Any) -> None:
    d = copy_payload(tmp_path / "set", lists=False)
    (d / "plugins/broken").mkdir()
    (d / "plugins/broken/__init__.py").write_text("import no_such_module_here\n")
    bundle = _build(tmp_path, d)
    root = new_root(ROCKY)
    before = snapshot(root)
    code, _, out = run_hooks(root, bundle)
    assert code == EXIT_USAGE, out
    assert "hooks/vdsm/plugins/broken/__init__.py failed to load: ModuleNotFoundError" in out
    assert snapshot(root) == before


@pytest.mark.rpm
@pytest.mark.parametrize("damage, message", [
    ("dotdot", f"hooks/vdsm/{EVIL}: hook file is a name with '..'"),
    ("symlink", "hooks/vdsm/hooks.d/before_vm_start/50_satchel_demo: a hook must be a "
                "regular file, this is a symlink"),
    ("fifo", "hooks/vdsm/hooks.d/before_vm_start/50_satchel_demo: a hook must be a "
             "regular file, this is a device, fifo or socket"),
    ("plugin code", "hooks/vdsm/plugins/driverdeploy/__init__.py: altered"),
])
def test_a_damaged_bundle_is_refused_before_any_change(
        bundle_copy: Path, new_root: Any, damage: str, message: str) -> None:
    hook = bundle_copy / "hooks/vdsm/hooks.d/before_vm_start/50_satchel_demo"
    if damage == "dotdot":
        (bundle_copy / "hooks/vdsm" / EVIL).write_text("#!/bin/sh\n")
    elif damage == "symlink":
        hook.unlink()
        hook.symlink_to("/etc/passwd")
    elif damage == "fifo":
        hook.unlink()
        os.mkfifo(hook)
    else:  # code that would run if it were loaded
        init = bundle_copy / "hooks/vdsm/plugins/driverdeploy/__init__.py"
        init.write_text("raise SystemExit('must not run')\n")
    root = new_root(ROCKY)
    before = snapshot(root)
    code, _, out = run_hooks(root, bundle_copy)
    assert code == EXIT_USAGE, out
    assert message in out
    assert snapshot(root) == before


@pytest.mark.rpm
def test_a_list_naming_a_package_the_bundle_lacks_is_refused_before_any_change(
        tmp_path: Path, new_root: Any, build_cache: Path) -> None:
    class Lenient:
        """The hooks component, told the bundle carries "ghost" (it does not)."""

        check = staticmethod(hooks_component.check)

        @staticmethod
        def build(ctx: Any, repo: Any = None) -> Any:
            return hooks_component.build(ctx, repo={"packages": [
                {"name": "demo-lib"}, {"name": "demo-common"}, {"name": "ghost"}]})

    d = copy_payload(tmp_path / "set")
    (d / "packages.d/hooks.fedora").write_text("demo-common\nghost\n")
    bundle = _build(tmp_path, d, packages=True, component=Lenient, cache=build_cache)
    root = new_root(FEDORA)
    before = snapshot(root)
    code, _, out = run_hooks(root, bundle)
    assert code == EXIT_REFUSED, out
    assert "packages.d/hooks.fedora: ghost" in out
    assert snapshot(root) == before
