"""The setup framework: where the configuration comes from, answers kept from the
previous run, the post-install state, --generate-answer, post-setup commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from installer import BUNDLE_FORMAT
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from installer.plugins.setup import _config, validate_recipe_section
from tests.setup.conftest import FQDN, RunSetup, engine_section
from tests.treesnap import tree

SKIP = ("var/log", "var/lib/satchel/lock")  # the engine's log and lock


def _tree(root: Path) -> dict[str, Any]:
    return tree(root, lambda rel: rel.startswith(SKIP))


def test_engine_recipe_section_is_valid() -> None:
    assert validate_recipe_section(engine_section()) == []


def test_section_problems_are_named_with_their_path() -> None:
    table = {"app": "Bad Name", "run_after_import": "yes", "post_commands": [["ok"], []],
             "nonsense": {}, "sysctl": "not a table"}
    problems = validate_recipe_section(table)
    assert any(p.startswith("app:") for p in problems)
    assert any(p.startswith("run_after_import:") for p in problems)
    assert "post_commands[1]: expected a command as a non-empty list of non-empty strings" \
        in problems
    assert any(p.startswith("nonsense: unknown key") for p in problems)
    assert "sysctl: expected a table ([setup.sysctl])" in problems


def test_no_configuration_is_a_clear_error(tmp_path: Path, run_setup: RunSetup) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    code, _, out = run_setup(root)
    assert code == EXIT_USAGE, out
    assert "no setup configuration" in out and "--bundle" in out
    assert not (root / "var/lib/satchel/state.json").exists()


def test_state_is_kept_and_a_rerun_changes_nothing(engine_root: Path, setup_config: Any,
                                                   run_setup: RunSetup, tmp_path: Path) -> None:
    setup_config(engine_root, {"app": "engine"})
    code, runner, out = run_setup(engine_root, {"SETUP/fqdn": "node1.example.test"})
    assert code == EXIT_OK, out
    answers = engine_root / _config.ANSWERS_COPY.lstrip("/")
    assert "SETUP/fqdn=str:node1.example.test" in answers.read_text()
    assert answers.stat().st_mode & 0o777 == 0o600
    before = _tree(engine_root)

    code, runner, out = run_setup(engine_root)  # nothing answered: the kept answer is used
    assert code == EXIT_OK, out
    assert runner.context.env["SETUP/fqdn"] == "node1.example.test"
    assert "1 answer(s) kept from the previous setup" in out
    assert runner.context.transaction.changes() == 0
    assert _tree(engine_root) == before

    generated = tmp_path / "answers.conf"
    code, _, out = run_setup(engine_root, {"SETUP/fqdn": "node2.example.test"},
                             generate_answer=generated)
    assert code == EXIT_OK, out
    assert "SETUP/fqdn=str:node2.example.test" in answers.read_text()
    assert "SETUP/fqdn=str:node2.example.test" in generated.read_text()


def test_default_host_name_comes_from_the_root(engine_root: Path, setup_config: Any,
                                               run_setup: RunSetup) -> None:
    setup_config(engine_root, {"app": "engine"})
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert runner.context.env["SETUP/fqdn"] == FQDN


def test_a_bad_host_name_is_refused_before_any_change(engine_root: Path, setup_config: Any,
                                                      run_setup: RunSetup) -> None:
    setup_config(engine_root, {"app": "engine"})
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root, {"SETUP/fqdn": "bad_name!"})
    assert code == EXIT_USAGE, out
    assert "SETUP/fqdn: 'bad_name!' is not a host name" in out
    assert _tree(engine_root) == before


def test_post_commands_run_with_the_root_and_a_failure_rolls_back(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    marker = "var/tmp/post-setup.txt"
    ok = ["/bin/sh", "-c",
          f'mkdir -p "$SATCHEL_ROOT/var/tmp" && echo ran >> "$SATCHEL_ROOT/{marker}"']
    fail = ["/bin/sh", "-c", "echo boom >&2; exit 7"]
    setup_config(engine_root, {"app": "engine", "post_commands": [ok, fail]})
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root)
    assert code == EXIT_FAILED, out
    assert "exit" in out and "7" in out
    # The setup's own files are rolled back; what a command did is its own business.
    after = _tree(engine_root)
    assert {k: v for k, v in after.items() if not k.startswith("var/tmp")} == \
        {k: v for k, v in before.items() if not k.startswith("var/tmp")}
    assert not (engine_root / _config.ANSWERS_COPY.lstrip("/")).exists()

    setup_config(engine_root, {"app": "engine", "post_commands": [ok]})
    os.unlink(engine_root / marker)
    code, _, out = run_setup(engine_root, {"SETUP/fqdn": "node1.example.test"})
    assert code == EXIT_OK, out
    assert (engine_root / marker).read_text() == "ran\n"
    code, _, out = run_setup(engine_root)  # nothing changed: not run again
    assert code == EXIT_OK, out
    assert "nothing changed: post-setup commands not run" in out
    assert (engine_root / marker).read_text() == "ran\n"


def test_configuration_comes_from_the_bundle_when_there_is_one(
        engine_root: Path, run_setup: RunSetup, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps(
        {"format": BUNDLE_FORMAT, "components": {"setup": {"app": "fromthebundle"}}}))
    code, _, out = run_setup(engine_root, bundle=bundle)
    assert code == EXIT_OK, out
    kept = json.loads((engine_root / _config.CONFIG_COPY.lstrip("/")).read_text())
    assert kept == {"app": "fromthebundle"}
