"""Recipe loading: frozen dataclasses, every error at once with its key path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bundler import recipe as recipes

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[bundle]
name = "app"
version = "2.1"
distro = "rhel"
distro_version = "9"

[packages]
include = ["app-*"]
sources = ["rpms"]
base = ["glibc"]

[[files]]
name = "conf"
root = "tree"
paths = ["etc/app"]
exclude = ["*.bak"]

[[files.override]]
match = "etc/app/*.key"
mode = "0600"
owner = "app"

[database]
names = ["app"]
port = 5433
passfile = "pgpass"
"""


def test_good_recipe_becomes_frozen_dataclasses(tmp_path: Path) -> None:
    r = recipes.parse(tmp_path / "r.toml", GOOD)
    assert r.bundle.name == "app" and r.bundle.label == "APP"
    assert r.packages.sources == (tmp_path / "rpms",)
    assert r.files[0].overrides[0].mode == 0o600
    assert r.database is not None and r.database.port == 5433
    assert r.database.passfile == tmp_path / "pgpass"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.bundle.name = "x"  # type: ignore[misc]


def test_every_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    bad = GOOD.replace('exclude = ["*.bak"]', 'exclude = "*.bak"') \
              .replace('version = "2.1"', 'version = 2.1\ncolour = "red"') \
              .replace('mode = "0600"', 'mode = "rw"') \
              .replace("port = 5433", "port = 99999\npassword = \"hunter2\"")
    path = tmp_path / "bad.toml"
    with pytest.raises(recipes.RecipeError) as e:
        recipes.parse(path, bad)
    problems = e.value.problems
    expected = [
        "bundle.version: expected a string",
        "bundle.colour: unknown key",
        "files[0].exclude: expected a list",
        "files[0].override[0].mode: 'rw' is not an octal mode",
        "database.port: 99999 is not a TCP port",
        "database.password: passwords do not belong in a recipe",
    ]
    for text in expected:
        assert any(p.startswith(f"{path}: {text}") for p in problems), (text, problems)
    assert e.value.exit_code == 2
    assert "hunter2" not in str(e.value)


def test_missing_and_invalid_recipe_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(recipes.InputError, match="no such recipe"):
        recipes.load(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[bundle\nname=")
    with pytest.raises(recipes.RecipeError, match="not valid TOML"):
        recipes.load(broken)


def test_shipped_recipes_load() -> None:
    for path in sorted((REPO / "recipes").glob("*.toml")):
        r = recipes.load(path)
        assert r.bundle.name


def test_plugin_sections_are_validated_by_their_plugin(tmp_path: Path) -> None:
    text = GOOD + '\n[vmcatcher]\nendpoint = "ftp://x"\npassword = "s3cret"\n'
    with pytest.raises(recipes.RecipeError) as e:
        recipes.parse(tmp_path / "r.toml", text)
    problems = "\n".join(e.value.problems)
    assert "vmcatcher.endpoint:" in problems
    assert "vmcatcher.password:" in problems and "s3cret" not in problems
