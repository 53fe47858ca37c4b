"""Service configuration (installer/plugins/setup/service_config.py): the engine's
*.conf.in templates rendered into engine.conf.d, bad templates and bad answers
refused at validation with nothing changed."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest

from installer.errors import EXIT_OK, EXIT_USAGE
from installer.plugins.setup import _config, service_config
from tests.setup.conftest import FQDN, RunSetup, engine_section
from tests.treesnap import tree

pytestmark = [pytest.mark.rpm, pytest.mark.root]

SKIP = ("var/log", "var/lib/satchel/lock", "var/lib/satchel/backup", "var/lib/rpm")
CONF_D = "etc/engine/engine.conf.d"
TEMPLATES = "usr/share/engine/conf"


def _tree(root: Path) -> dict[str, Any]:
    return tree(root, lambda rel: rel.startswith(SKIP))


def _section(*names: str) -> dict[str, Any]:
    full = engine_section()
    return {"app": "engine", **{n: full[n] for n in names}}


def test_section_problems() -> None:
    assert service_config.check_section(engine_section()["config"]) == []
    problems = service_config.check_section({"templates": "conf", "http_port": 0,
                                             "https_port": True, "heap_max": "lots"})
    assert "dir: required" in problems
    assert any(p.startswith("templates: expected an absolute path") for p in problems)
    assert "http_port: 0 is not a port (an integer 1-65535)" in problems
    assert "https_port: expected an integer, got a boolean" in problems
    assert any(p.startswith("heap_max: 'lots' is not a heap size") for p in problems)


def test_templates_rendered_and_a_rerun_changes_nothing(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    root = engine_root
    section = _section("runtime", "pki", "config")
    setup_config(root, section)
    code, runner, out = run_setup(root, {"SETUP_CONFIG/httpPort": "8080",
                                         "SETUP_CONFIG/heapMax": "2g"})
    assert code == EXIT_OK, out

    pki = importlib.import_module("installer.plugins.setup.pki")
    ca = pki.ca_cert(_config.SetupConfig(section, "test"))
    java = (root / CONF_D / "20-java.conf").read_text()
    assert 'JAVA_HOME="/usr/lib/jvm/engine-jre-17"\n' in java
    assert 'ENGINE_HEAP_MAX="2g"\n' in java
    protocols = (root / CONF_D / "30-protocols.conf").read_text()
    for line in (f'ENGINE_FQDN="{FQDN}"', "ENGINE_HTTP_PORT=8080", "ENGINE_HTTPS_PORT=443",
                 f'ENGINE_PKI_CA="{ca}"'):
        assert line + "\n" in protocols
    assert "$" not in java + protocols
    for name in ("20-java.conf", "30-protocols.conf"):
        st = os.stat(root / CONF_D / name)
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    files = runner.context.state.files("setup")
    assert f"/{CONF_D}/30-protocols.conf" in files

    before = _tree(root)
    code, runner, out = run_setup(root)  # the answers are kept from the previous run
    assert code == EXIT_OK, out
    assert runner.context.env["SETUP_CONFIG/httpPort"] == 8080
    assert runner.context.transaction.changes() == 0
    assert _tree(root) == before


def test_bad_templates_and_answers_are_refused(engine_root: Path, setup_config: Any,
                                               run_setup: RunSetup) -> None:
    root = engine_root
    setup_config(root, _section("runtime", "config"))
    extra = root / TEMPLATES / "10-extra.conf.in"
    extra.write_text("# extra\nFOO=${FQDN}\nBAR=${NO_SUCH_THING}\n")
    before = _tree(root)

    code, _, out = run_setup(root)
    assert code == EXIT_USAGE, out
    assert "template /usr/share/engine/conf/10-extra.conf.in, line 3: unknown variable " \
           "${NO_SUCH_THING}" in out
    assert _tree(root) == before

    extra.unlink()  # 30-protocols.conf.in needs the CA's path: no [setup.pki]
    before = _tree(root)
    code, _, out = run_setup(root)
    assert code == EXIT_USAGE, out
    assert "30-protocols.conf.in, line 7: ${PKI_CA} has no value: the recipe has no " \
           "[setup.pki]" in out
    assert _tree(root) == before

    for settings, message in (
            ({"SETUP_CONFIG/httpPort": "0"}, "SETUP_CONFIG/httpPort: 0 is not a port"),
            ({"SETUP_CONFIG/httpsPort": "70000"},
             "SETUP_CONFIG/httpsPort: 70000 is not a port"),
            ({"SETUP_CONFIG/httpPort": "8443", "SETUP_CONFIG/httpsPort": "8443"},
             "SETUP_CONFIG/httpsPort: 8443 is also SETUP_CONFIG/httpPort"),
            ({"SETUP_CONFIG/heapMax": "2 GB"},
             "SETUP_CONFIG/heapMax: '2 GB' is not a heap size")):
        code, _, out = run_setup(root, settings)
        assert code == EXIT_USAGE, out
        assert message in out, out
        assert _tree(root) == before
