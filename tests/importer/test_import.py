"""`install import` end to end: a bundle built from the demo payload (packages,
file sets, secrets, a service) restored into a temporary root whose rpmdb already
holds the base package, with real dnf --installroot. Databases are covered in
test_database_restore.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bundler.dnf import installed
from tests.importer.helpers import OS_RELEASE, run_import, snapshot

pytestmark = [pytest.mark.rpm, pytest.mark.root]


def test_import_restores_packages_files_secrets_and_services(bundle: Path, root: Path) -> None:
    r = run_import(bundle, root)
    assert r.returncode == 0, r.stdout + r.stderr
    nevras = installed(root)
    assert {n.rsplit("-", 2)[0] for n in nevras} == {"demo-base", "demo-app", "demo-lib",
                                                     "demo-common"}
    conf = root / "etc/demo/app.conf"
    assert conf.read_text() == "# restored by satchel\nport = 8080\n"  # bundle beats rpm
    readme = root / "var/lib/demo/README"
    assert (readme.stat().st_uid, readme.stat().st_gid) == (65534, 65534)
    key = root / "etc/pki/demo/demo.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/systemd/system/multi-user.target.wants/demo-app.service").is_symlink()
    installer = root / "usr/libexec/satchel/install"
    assert installer.read_bytes() == (bundle / "install").read_bytes()
    assert installer.stat().st_mode & 0o777 == 0o755
    # Nothing points at the medium once it is unplugged.
    repos = root / "etc/yum.repos.d"
    assert not repos.exists() or not any(repos.iterdir())
    state = json.loads((root / "var/lib/satchel/state.json").read_text())
    assert "/etc/demo/app.conf" in json.dumps(state)
    # The set was staged before dnf ran, when app.conf did not exist yet; demo-app
    # installed it meanwhile, so it was replaced (with a backup), not "created".
    assert state["actions"]["import"]["files"]["/etc/demo/app.conf"]["how"] == "replaced"
    backups = list((root / "var/lib/satchel/backup").glob("*/*/etc/demo/app.conf"))
    assert [b.read_text() for b in backups] == [
        "# demo-app configuration; edits survive upgrades (%config(noreplace))\n"
        "listen = 127.0.0.1:8080\n"]
    logs = list((root / "var/log/satchel").glob("import-*.log"))
    assert logs and str(logs[0].relative_to(root)) in r.stdout + r.stderr
    # dnf's test transaction is started before the other plans, which run beside it,
    # and read back at import.packages.plan
    lines = logs[0].read_text().splitlines()
    events = [ln.rsplit("  ", 1)[-1] for ln in lines if "satchel.engine:   import." in ln]
    assert events.index("import.packages.start") < events.index("import.files.plan") \
        < events.index("import.packages.plan")
    assert sum("tsflags=test" in ln for ln in lines) == 1


def test_second_import_changes_nothing(bundle: Path, root: Path) -> None:
    assert run_import(bundle, root).returncode == 0
    before, rpms_before = snapshot(root), installed(root)
    again = run_import(bundle, root)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout + again.stderr
    after = snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    # The state registry is rewritten (same content); nothing else may differ.
    assert changed <= {"var/lib/satchel/state.json"}, changed
    assert installed(root) == rpms_before


@pytest.mark.parametrize("stage", ["transaction_begin", "early_misc", "packages", "misc",
                                   "transaction_end", "closeup"])
def test_failure_at_any_stage_leaves_the_root_as_it_was(bundle: Path, root: Path,
                                                        stage: str) -> None:
    before, rpms_before = snapshot(root), installed(root)
    r = run_import(bundle, root, env={"SATCHEL_FAIL_AT": stage})
    assert r.returncode == 1, r.stdout + r.stderr
    assert installed(root) == rpms_before
    after = snapshot(root)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    # Only satchel's own bookkeeping directories may remain (empty of changes).
    assert all(k.startswith("var/lib/satchel") or k in ("var", "var/lib", "var/log")
               for k in changed), sorted(changed)
    assert not (root / "etc/demo").exists()


def test_wrong_distro_is_refused_naming_both_values(bundle: Path, root: Path) -> None:
    (root / "etc/os-release").write_text('ID="debian"\nVERSION_ID="12"\n')
    before = snapshot(root)
    r = run_import(bundle, root)
    assert r.returncode == 3
    assert "'rhel'" in r.stderr and "'debian'" in r.stderr
    assert "'9'" in r.stderr and "'12'" in r.stderr
    assert installed(root) == [n for n in installed(root) if n.startswith("demo-base")]
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith("var")} == \
           {k: v for k, v in before.items() if not k.startswith("var")}


def test_damaged_bundle_is_refused_naming_the_file(bundle: Path, root: Path,
                                                    tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    data = bytearray((copy / "files/config.tar.zst").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "files/config.tar.zst").write_bytes(bytes(data))
    r = run_import(copy, root)
    assert r.returncode == 2
    assert "files/config.tar.zst" in r.stderr
    assert not (root / "etc/demo").exists()


def test_dry_run_shows_the_plan_and_changes_nothing(bundle: Path, root: Path) -> None:
    before = snapshot(root)
    r = run_import(bundle, root, "--dry-run")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "install demo-app-1.0-1.noarch" in out
    assert "files config:" in out and "to create" in out
    assert "service demo-app.service: enable" in out
    assert snapshot(root) == before


def test_a_missing_base_requirement_is_named_before_any_change(bundle: Path,
                                                               tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    (bare / "etc").mkdir(parents=True)
    (bare / "etc/os-release").write_text(OS_RELEASE)
    r = run_import(bundle, bare)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "demo-base-release" in r.stderr or "demo-base-sh" in r.stderr
    assert not (bare / "etc/demo").exists()


def test_help_documents_the_answer_keys_and_exit_codes() -> None:
    import contextlib
    import io

    from installer import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["import", "--help"]) == 0
    text = out.getvalue()
    for key in ("IMPORT/replaceDb", "IMPORT/secretsPassphraseFile", "IMPORT/secretsKey",
                "CORE/confirm"):
        assert key in text
    assert "3  refused by validation" in text
