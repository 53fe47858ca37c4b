"""The sysctl, runtime prerequisite and tools plugins in a temporary root: the
files they write (content, mode, owner), re-runs that change nothing, the live
`sysctl -p` path with a stand-in sysctl, refusals that name what is wrong."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from installer.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from installer.plugins.setup import _config
from installer.plugins.setup.prereq import at_least, parse_version
from tests.setup.conftest import FQDN, RunSetup, engine_section
from tests.treesnap import tree

pytestmark = [pytest.mark.rpm, pytest.mark.root]

SKIP = ("var/log", "var/lib/satchel/lock", "var/lib/satchel/backup", "var/lib/satchel/journal")
SYSCTL = "etc/sysctl.d/10-engine.conf"
JRE = "usr/lib/jvm/engine-jre-17"


def _tree(root: Path) -> dict[str, Any]:
    return tree(root, lambda rel: rel.startswith(SKIP))


def _meta(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def _log(runner: Any) -> str:
    return Path(runner.log_path).read_text()


# -- sysctl ---------------------------------------------------------------------------------

def test_sysctl_file_offline_is_written_not_applied(engine_root: Path, setup_config: Any,
                                                    run_setup: RunSetup) -> None:
    settings = {"vm.swappiness": "10", "kernel.shmmax": 68719476736}
    setup_config(engine_root, {"app": "engine", "sysctl": {"settings": settings}})
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert (engine_root / SYSCTL).read_text() == (
        "# Written by satchel `install setup` for engine: the kernel settings it needs.\n"
        "# satchel owns this file: change the recipe's [setup.sysctl] and re-run setup.\n"
        "kernel.shmmax = 68719476736\n"
        "vm.swappiness = 10\n")
    assert _meta(engine_root / SYSCTL) == (0o644, 0, 0)
    assert "not applied now (the root is not this machine's /)" in out
    assert "+ sysctl" not in _log(runner)
    before = _tree(engine_root)

    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert runner.context.transaction.changes() == 0
    assert _tree(engine_root) == before
    assert "not applied now" not in out

    # Another priority: the new file, and the previous setup's file goes.
    setup_config(engine_root, {"app": "engine",
                               "sysctl": {"settings": settings, "priority": 30}})
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert (engine_root / "etc/sysctl.d/30-engine.conf").read_bytes() == \
        before[SYSCTL][0][1]
    assert not (engine_root / SYSCTL).exists()
    assert "/" + SYSCTL not in runner.context.state.files("setup")


def test_sysctl_on_a_live_root_runs_sysctl_p_and_rollback_restores(
        engine_root: Path, setup_config: Any, run_setup: RunSetup, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in sysctl (the machine's kernel is never touched): logs its argv,
    # answers -n with a fixed value.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sysctl-calls"
    fake = bin_dir / "sysctl"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                    "[ \"$1\" = -n ] && echo 33554432\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(_config, "live_root", lambda plugin: True)
    setup_config(engine_root, {"app": "engine",
                               "sysctl": {"settings": {"kernel.shmmax": 68719476736}}})
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root)
    assert code != EXIT_OK and "rolled back" in out
    assert calls.read_text().splitlines() == [
        "-n kernel.shmmax", "-p /etc/sysctl.d/10-engine.conf", "-w kernel.shmmax=33554432"]
    assert _tree(engine_root) == before

    monkeypatch.delenv("SATCHEL_FAIL_AT")
    calls.unlink()
    code, _, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert "-p /etc/sysctl.d/10-engine.conf" in calls.read_text()
    assert "not applied now" not in out


# -- the runtime prerequisite -----------------------------------------------------------------

@pytest.mark.parametrize(("text", "version"), [
    ("17.0.9", (17, 0, 9)), ("17", (17,)), ("1.8.0_392", (8, 0, 392)), ("1.8", (8,)),
    ("21-ea", (21,)), ("11.0.2+9", (11, 0, 2)), ("x17", None)])
def test_java_versions(text: str, version: tuple[int, ...] | None) -> None:
    assert parse_version(text) == version


def test_version_comparison() -> None:
    assert at_least((17, 0, 9), (17,))
    assert at_least((17,), (17, 0, 0))
    assert not at_least((11, 0, 2), (17,))
    assert not at_least((8, 0, 392), (11,))
    assert at_least((21,), (17, 0, 9))


def _runtime(min_version: str = "17", **extra: Any) -> dict[str, Any]:
    runtime = dict(engine_section()["runtime"], min_version=min_version, **extra)
    return {"app": "engine", "runtime": runtime}


def test_runtime_found_among_the_candidates(engine_root: Path, setup_config: Any,
                                            run_setup: RunSetup) -> None:
    setup_config(engine_root, _runtime())
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert str(runner.context.env["SETUP_RUNTIME/javaHome"]) == "/" + JRE
    assert "Java VM: /usr/lib/jvm/engine-jre-17 (version 17.0.9)" in _log(runner)


def test_missing_runtime_is_refused_naming_candidates(engine_root: Path, setup_config: Any,
                                                      run_setup: RunSetup) -> None:
    setup_config(engine_root, _runtime("21"))
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root)
    assert code == EXIT_REFUSED, out
    assert "no Java VM of at least version 21 found; looked in:" in out
    assert "/usr/lib/jvm/engine-jre-17: version 17.0.9 (too old)" in out
    assert "/usr/lib/jvm/jre-17: absent" in out
    assert "/usr/lib/jvm/java-17-openjdk: absent" in out
    assert _tree(engine_root) == before


def test_too_old_runtime_is_refused(engine_root: Path, setup_config: Any,
                                    run_setup: RunSetup) -> None:
    setup_config(engine_root, _runtime())
    (engine_root / JRE / "release").write_text('IMPLEMENTOR="x"\nJAVA_VERSION="11.0.2"\n')
    (engine_root / "usr/lib/jvm/jre-17").mkdir()
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root)
    assert code == EXIT_REFUSED, out
    assert "/usr/lib/jvm/engine-jre-17: version 11.0.2 (too old)" in out
    assert "/usr/lib/jvm/jre-17: no release file" in out
    assert _tree(engine_root) == before

    # An answered directory is checked the same way.
    code, _, out = run_setup(engine_root, {"SETUP_RUNTIME/javaHome": "/" + JRE})
    assert code == EXIT_USAGE, out
    assert ("SETUP_RUNTIME/javaHome: /usr/lib/jvm/engine-jre-17 is not a Java VM of at least "
            "version 17: version 11.0.2 (too old)") in out
    assert _tree(engine_root) == before


def test_kept_runtime_that_no_longer_qualifies_is_replaced(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    setup_config(engine_root, _runtime())
    code, _, out = run_setup(engine_root, {"SETUP_RUNTIME/javaHome": "/" + JRE})
    assert code == EXIT_OK, out
    # The runtime is updated: the old directory is too old now, a newer one is there.
    (engine_root / JRE / "release").write_text('JAVA_VERSION="11.0.2"\n')
    (engine_root / "usr/lib/jvm/jre-17").mkdir()
    (engine_root / "usr/lib/jvm/jre-17/release").write_text('JAVA_VERSION="17.0.12"\n')
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert "no longer qualifies; using /usr/lib/jvm/jre-17" in out
    assert str(runner.context.env["SETUP_RUNTIME/javaHome"]) == "/usr/lib/jvm/jre-17"


# -- the tools --------------------------------------------------------------------------------

def _tools() -> dict[str, Any]:
    return {"app": "engine", "tools": engine_section()["tools"]}


def test_tools_need_the_admin_password_the_first_time(engine_root: Path, setup_config: Any,
                                                      run_setup: RunSetup) -> None:
    setup_config(engine_root, _tools())
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root)
    assert code == EXIT_USAGE, out
    assert ("SETUP/adminPassword: required the first time (there is no "
            "/etc/engine/.tools-password yet)") in out
    assert _tree(engine_root) == before


def test_tools_configs_and_password_file(engine_root: Path, setup_config: Any,
                                         run_setup: RunSetup) -> None:
    setup_config(engine_root, _tools())
    code, runner, out = run_setup(engine_root, {"SETUP/adminPassword": "Adm1n pw"})
    assert code == EXIT_OK, out
    etc = engine_root / "etc/engine"
    for name, section in (("log-collector", "LogCollector"), ("iso-uploader", "ISOUploader"),
                          ("image-uploader", "ImageUploader")):
        conf = etc / f"engine-{name}.conf"
        assert conf.read_text() == (
            "# Written by satchel `install setup` for engine; re-run setup to change it.\n"
            f"[{section}]\nengine={FQDN}:443\nuser=admin@internal\n"
            "passwd-file=/etc/engine/.tools-password\n")
        assert _meta(conf) == (0o644, 0, 0)
    assert (etc / ".tools-password").read_text() == "Adm1n pw\n"
    assert _meta(etc / ".tools-password") == (0o600, 0, 0)
    record = runner.context.state.files("setup")["/etc/engine/.tools-password"]
    assert record["sha256"] is None and record["secret"] is True
    assert "Adm1n pw" not in _log(runner) and "Adm1n pw" not in out
    before = _tree(engine_root)

    # Not answered again: read back from the password file; nothing changes.
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert runner.context.env["SETUP/adminPassword"] == "Adm1n pw"
    assert _tree(engine_root) == before

    # Another user and the https port of the service configuration, when it is declared.
    settings = {"SETUP/adminUser": "ops@internal"}
    port = "SETUP_CONFIG/httpsPort" in runner.context.env.keys
    if port:
        settings["SETUP_CONFIG/httpsPort"] = "8443"
    code, runner, out = run_setup(engine_root, settings)
    assert code == EXIT_OK, out
    text = (etc / "engine-iso-uploader.conf").read_text()
    assert "user=ops@internal\n" in text
    assert f"engine={FQDN}:{8443 if port else 443}\n" in text
    assert (etc / ".tools-password").read_text() == "Adm1n pw\n"
