"""The appliance's services (installer/plugins/setup/services.py): enabled with
`systemctl --root` into a temporary root (never started: it is not the running
system), auxiliary ones only when their package is installed; a rollback in closeup
removes what setup wrote, the enablement symlinks included."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from installer.plugins.setup import services
from tests.setup.conftest import RunSetup, engine_section, make_engine_root
from tests.treesnap import tree

pytestmark = [pytest.mark.rpm, pytest.mark.root]

SKIP = ("var/log", "var/lib/satchel/lock", "var/lib/satchel/backup", "var/lib/rpm")
WANTS = "etc/systemd/system/multi-user.target.wants"
UNITS = "usr/lib/systemd/system"


def _tree(root: Path) -> dict[str, Any]:
    return tree(root, lambda rel: rel.startswith(SKIP))


def _installable(root: Path) -> None:
    """Give the engine's units an [Install] section where the package's have none
    (systemctl enables a unit by its WantedBy=)."""
    for unit in (root / UNITS).glob("engine*.service"):
        text = unit.read_text()
        if "[Install]" not in text:
            unit.write_text(text + "\n[Install]\nWantedBy=multi-user.target\n")


def test_section_problems() -> None:
    assert services.check_section(engine_section()["services"]) == []
    problems = services.check_section({"main": "engine", "auxiliary": [
        {"unit": "etl.service", "pkg": "x"}, "notifier.service"]})
    assert "main: 'engine' is not a unit name (like engine.service)" in problems
    assert any(p.startswith("auxiliary[0].pkg: unknown key") for p in problems)
    assert any(p.startswith("auxiliary[1]: expected a table") for p in problems)


def test_installed_services_are_enabled(engine_rpms: Path, tmp_path: Path, setup_config: Any,
                                        run_setup: RunSetup) -> None:
    root = tmp_path / "root"
    root.mkdir()
    make_engine_root(root, engine_rpms, exclude=("engine-etl",))
    _installable(root)
    table = {"app": "engine", "services": engine_section()["services"]}

    setup_config(root, dict(table, services={"main": "nosuch.service"}))
    before = _tree(root)
    code, _, out = run_setup(root)
    assert code == EXIT_REFUSED, out
    assert "service nosuch.service: no such unit in the root" in out
    assert _tree(root) == before

    setup_config(root, table)
    code, runner, out = run_setup(root)
    assert code == EXIT_OK, out
    assert sorted(os.listdir(root / WANTS)) == ["engine-notifier.service", "engine.service"]
    assert os.readlink(root / WANTS / "engine.service") == "/usr/lib/systemd/system/engine.service"
    log = Path(runner.log_path).read_text()
    assert "engine-etl.service: package engine-etl is not installed: left alone" in log
    assert "not the running system: nothing to stop" in log
    state = json.loads((root / "var/lib/satchel/state.json").read_text())
    recorded = state["actions"]["setup"]["services"]
    assert sorted(recorded) == ["engine-notifier.service", "engine.service"]
    assert recorded["engine.service"]["main"] is True
    assert recorded["engine-notifier.service"]["main"] is False
    assert all(r["enabled"] and not r["started"] for r in recorded.values())

    before = _tree(root)
    code, runner, out = run_setup(root)
    assert code == EXIT_OK, out
    assert runner.context.transaction.changes() == 0
    assert _tree(root) == before


def test_a_failure_in_closeup_rolls_everything_back(
        engine_root: Path, setup_config: Any, run_setup: RunSetup,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = engine_root
    _installable(root)
    full = engine_section()
    (root / "etc/exports").write_text(f"/srv/x *(ro)\n{full['iso_domain']['path']} *(rw)\n")
    table = {"app": "engine", **{k: full[k] for k in ("runtime", "pki", "config",
                                                       "iso_domain", "services")}}
    setup_config(root, table)
    before = _tree(root)

    with monkeypatch.context() as m:
        m.setenv("SATCHEL_FAIL_AT", "closeup")
        code, _, out = run_setup(root)
    assert code == EXIT_FAILED, out
    assert "failure injected at stage closeup" in out
    assert _tree(root) == before

    # A post-setup command failing after the services were enabled.
    setup_config(root, dict(table, post_commands=[["/bin/false"]]))
    before = _tree(root)
    code, runner, out = run_setup(root)
    assert code == EXIT_FAILED, out
    log = Path(runner.log_path).read_text()
    assert "undo: enable engine.service" in log
    assert not (root / "etc/systemd").exists()
    assert not (root / "etc/engine/engine.conf.d/30-protocols.conf").exists()
    assert _tree(root) == before


def test_a_static_unit_is_noted_not_enabled(engine_root: Path, setup_config: Any,
                                            run_setup: RunSetup) -> None:
    unit = engine_root / UNITS / "engine.service"
    unit.write_text(unit.read_text().split("[Install]")[0])  # no [Install]: static
    setup_config(engine_root, {"app": "engine", "services": {"main": "engine.service"}})
    code, _, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert "service engine.service is static (its unit has no [Install] section)" in out
    assert not (engine_root / "etc/systemd").exists()
