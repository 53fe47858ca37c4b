"""`install vmcatcher register` into a tmp root, through installer.cli.main, then the
handler it wires up (`install vmcatcher handle`) against the OpenNebula simulator."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import List

import pytest

from installer import cli, engine
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from installer.plugins.vmcatcher import _envfile, validate_recipe_section
from installer.vmcatcher.config import SECTION, load_config, read_credentials
from tests.installer.util import snapshot
from tests.onesim.fixture import onesim  # noqa: F401  (the fixture)
from tests.onesim.sim import READY, OneSim

from .conftest import IDENT, sha512

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="chown to oneadmin needs root")]

PASSWORD = "Reg1st-s3cret!"  # must reach the credentials file and nowhere else
ENDPOINT = "http://one.example.org:2633/RPC2"
ONEADMIN = 9869
ENV_FILE = """\
# vmcatcher settings, sourced by its cron job
export VMCATCHER_RDBMS="sqlite:////var/lib/vmcatcher/vmcatcher.db"
export VMCATCHER_CACHE_EVENT="python /usr/libexec/vmcatcher/vmcatcher_eventHndlExpl"
X509_CERT_DIR=/etc/grid-security/certificates
"""
HANDLER = "/usr/libexec/satchel/install vmcatcher handle"


def make_root(root: Path, oneadmin: bool = True) -> Path:
    (root / "etc/sysconfig").mkdir(parents=True)
    users = "root:x:0:0:root:/root:/bin/bash\n"
    if oneadmin:
        users += f"oneadmin:x:{ONEADMIN}:{ONEADMIN}::/var/lib/one:/bin/bash\n"
    (root / "etc/passwd").write_text(users)
    (root / "etc/group").write_text(f"root:x:0:\noneadmin:x:{ONEADMIN}:\n")
    (root / "etc/sysconfig/vmcatcher").write_text(ENV_FILE)
    for d in ("var/lib/satchel", "var/log/satchel"):  # the engine's own
        (root / d).mkdir(parents=True)
    return root


def register(root: Path, *extra: str, endpoint: str = ENDPOINT,
             password: str = PASSWORD) -> int:
    return cli.main(["vmcatcher", "register", "--root", str(root), "--unattended",
                     "--set", f"VMCATCHER/endpoint={endpoint}",
                     "--set", f"VMCATCHER/password={password}", *extra])


def logs(root: Path) -> List[Path]:
    return sorted((root / "var/log/satchel").glob("*.log"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


def test_register_writes_config_credentials_env_and_dirs(root: Path) -> None:
    assert register(root, "--set", "VMCATCHER/imageFormat=qcow2",
                    "--set", "VMCATCHER/firstVersionPermissions=640",
                    "--set", "VMCATCHER/readyTimeout=90", "--debug") == EXIT_OK

    cfg = load_config(str(root / "etc/satchel/vmcatcher.conf"), str(root))
    assert cfg.endpoint == ENDPOINT
    assert cfg.credentials_file == str(root / "etc/satchel/vmcatcher.auth")
    assert (cfg.datastore, cfg.image_format, cfg.ready_timeout) == ("default", "qcow2", 90)
    assert cfg.first_version_permissions == (1, 1, 0, 1, 0, 0, 0, 0, 0)
    assert (root / "etc/satchel/vmcatcher.conf").read_text().count(f"[{SECTION}]") == 1

    auth = root / "etc/satchel/vmcatcher.auth"
    st = auth.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (ONEADMIN, ONEADMIN)
    assert auth.read_text() == f"oneadmin:{PASSWORD}\n"
    assert read_credentials(str(auth)) == f"oneadmin:{PASSWORD}"

    assert logs(root)
    for log in logs(root):
        assert PASSWORD not in log.read_text(errors="replace"), log
    state = (root / "var/lib/satchel/state.json").read_text()
    assert PASSWORD not in state
    assert '"/etc/satchel/vmcatcher.auth"' in state and '"/etc/sysconfig/vmcatcher"' in state

    lines = (root / "etc/sysconfig/vmcatcher").read_text().splitlines()
    assert lines[:4] == [
        "# vmcatcher settings, sourced by its cron job",
        'export VMCATCHER_RDBMS="sqlite:////var/lib/vmcatcher/vmcatcher.db"',
        f'export VMCATCHER_CACHE_EVENT="{HANDLER}"',  # replaced in place
        "X509_CERT_DIR=/etc/grid-security/certificates"]
    assert lines[5:] == [
        'export VMCATCHER_CACHE_DIR_CACHE="/var/lib/vmcatcher/cache"',
        'export VMCATCHER_CACHE_DIR_DOWNLOAD="/var/lib/vmcatcher/cache/partial"',
        'export VMCATCHER_CACHE_DIR_EXPIRE="/var/lib/vmcatcher/cache/expired"']
    for d in ("cache", "cache/partial", "cache/expired"):
        assert (root / "var/lib/vmcatcher" / d).is_dir()


def test_second_run_changes_nothing(root: Path) -> None:
    assert register(root) == EXIT_OK
    before = snapshot(root)
    first_logs = logs(root)
    assert register(root) == EXIT_OK
    assert snapshot(root) == before
    (second,) = [p for p in logs(root) if p not in first_logs]
    text = second.read_text()
    assert "nothing changed" in text and "done: write" not in text


def test_without_oneadmin_the_credentials_belong_to_root(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root", oneadmin=False)
    assert register(root, "--set", "VMCATCHER/user=siteadmin") == EXIT_OK
    st = (root / "etc/satchel/vmcatcher.auth").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert (root / "etc/satchel/vmcatcher.auth").read_text() == f"siteadmin:{PASSWORD}\n"


@pytest.mark.parametrize("stage", ["misc", "transaction_end", "closeup"])
def test_failure_leaves_the_root_as_before(root: Path, stage: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", stage)
    assert register(root) == EXIT_FAILED
    assert snapshot(root) == before


@pytest.mark.parametrize("setting, key", [
    ("VMCATCHER/endpoint=ftp://one.example.org/RPC2", "VMCATCHER/endpoint"),
    ("VMCATCHER/endpoint=not a url", "VMCATCHER/endpoint"),
    ("VMCATCHER/endpoint=http://oneadmin:pw@one:2633/RPC2", "VMCATCHER/endpoint"),
    ("VMCATCHER/firstVersionPermissions=680", "VMCATCHER/firstVersionPermissions"),
    ("VMCATCHER/firstVersionPermissions=6000", "VMCATCHER/firstVersionPermissions"),
    ("VMCATCHER/readyTimeout=0", "VMCATCHER/readyTimeout"),
    ("VMCATCHER/readyTimeout=-5", "VMCATCHER/readyTimeout"),
    ("VMCATCHER/imageFormat=vmdk", "VMCATCHER/imageFormat"),
    ("VMCATCHER/cacheDir=relative/cache", "VMCATCHER/cacheDir"),
])
def test_bad_input_is_refused_before_any_change(root: Path, setting: str, key: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(root)
    assert register(root, "--set", setting) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: --set: {key}" in err or f"error: {key}:" in err, err
    assert snapshot(root) == before
    assert not (root / "var/lib/satchel/state.json").exists()


def test_missing_password_in_unattended_mode_names_the_key(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["vmcatcher", "register", "--root", str(root), "--unattended",
                     "--set", f"VMCATCHER/endpoint={ENDPOINT}"])
    assert code == EXIT_USAGE
    assert "VMCATCHER/password" in capsys.readouterr().err


def test_human_mode_asks_the_password_hidden(root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    asked: List[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return PASSWORD

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    out = io.StringIO()
    # endpoint, user (default), datastore (default), then "Proceed?" (default yes)
    stdin = Tty(f"{ENDPOINT}\n\n\n\n")
    code = engine.run("vmcatcher", root=root, stdin=stdin, stdout=out, stderr=out)
    assert code == EXIT_OK, out.getvalue()
    assert asked == ["OpenNebula password: "]
    assert PASSWORD not in out.getvalue()
    assert "write the credentials file /etc/satchel/vmcatcher.auth" in out.getvalue()
    assert (root / "etc/satchel/vmcatcher.auth").read_text() == f"oneadmin:{PASSWORD}\n"
    for log in logs(root):
        assert PASSWORD not in log.read_text(errors="replace")


def test_env_file_rendering_keeps_lines_and_drops_duplicates() -> None:
    old = ("A=1\n  VMCATCHER_CACHE_EVENT='x'\nB=2\nexport VMCATCHER_CACHE_EVENT=y\n"
           "VMCATCHER_CACHE_EVENTS=keep\nC=3")
    new = _envfile.render(old, [("VMCATCHER_CACHE_EVENT", "h"), ("D", "4")])
    assert new == ('A=1\n  VMCATCHER_CACHE_EVENT="h"\nB=2\nVMCATCHER_CACHE_EVENTS=keep\n'
                   f'C=3\n{_envfile.COMMENT}export D="4"\n')
    assert _envfile.render(new, [("VMCATCHER_CACHE_EVENT", "h"), ("D", "4")]) == new
    assert _envfile.render("", [("D", "4")]) == f'{_envfile.COMMENT}export D="4"\n'


def test_recipe_section_validator() -> None:
    from bundler import recipe

    loaded = recipe.load(Path(__file__).parents[2] / "recipes/opennebula.toml")
    assert validate_recipe_section(loaded.plugins["vmcatcher"]) == []
    problems = validate_recipe_section({
        "endpoint": "ftp://x", "first_version_permissions": "68", "ready_timeout": 0,
        "image_format": "vmdk", "env_file": "etc/x", "cache_dir": '/var/"x"',
        "password": "pw", "colour": "blue"})
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == sorted(["endpoint", "first_version_permissions", "ready_timeout",
                           "image_format", "env_file", "cache_dir", "password", "colour"])
    assert validate_recipe_section({}) == ["endpoint: missing"]


def test_register_then_handle_an_event_end_to_end(
        root: Path, onesim: OneSim, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    onesim.users[0].password = PASSWORD
    assert register(root, "--set", "VMCATCHER/readyTimeout=30",
                    endpoint=onesim.endpoint, password=PASSWORD) == EXIT_OK
    cache = root / "var/lib/vmcatcher/cache"
    data = b"a small raw disk image\n" * 512
    (cache / IDENT).write_bytes(data)
    for name, value in {
            "VMCATCHER_EVENT_TYPE": "AvailablePostfix",
            "VMCATCHER_EVENT_DC_IDENTIFIER": IDENT,
            "VMCATCHER_EVENT_FILENAME": IDENT,
            "VMCATCHER_EVENT_HV_FORMAT": "raw",
            "VMCATCHER_EVENT_DC_TITLE": "Registered end to end",
            "VMCATCHER_EVENT_SL_CHECKSUM_SHA512": sha512(data),
            "VMCATCHER_CACHE_DIR_CACHE": str(cache),
            "VMCATCHER_CACHE_DIR_EXPIRE": str(cache / "expired")}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["vmcatcher", "handle", "--root", str(root)]) == EXIT_OK
    (img,) = onesim.named(IDENT)
    assert img.state == READY and img.sha512 == sha512(data)
    assert img.perms == (1, 1, 0, 0, 0, 0, 0, 0, 0)  # first version: 600
    handler_log = (root / "var/log/satchel/vmcatcher.log").read_text()
    assert "registered image" in handler_log and PASSWORD not in handler_log


def test_help_shows_the_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["vmcatcher", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "register" in out and "handle" in out
    assert cli.main(["vmcatcher", "handle", "--help"]) == EXIT_OK
    assert "--config" in capsys.readouterr().out
    assert cli.main(["vmcatcher"]) == EXIT_USAGE
