"""The PKI plugin with real openssl in a temporary root: the CA and service
certificates, keystores, password-less copies, fingerprints (checked against
openssl and ssh-keygen), re-runs that change nothing, a reused CA, a refused
mismatched CA key, bad answers, secrets kept out of logs and argv, rollback."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from installer.engine import process
from installer.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from installer.plugins.setup._pkitool import ssh_fingerprint
from tests.setup.conftest import FQDN, RunSetup, engine_section
from tests.treesnap import tree

pytestmark = [pytest.mark.rpm, pytest.mark.root]

# The engine's own log, lock, backups and journal (left after a failed run).
SKIP = ("var/log", "var/lib/satchel/lock", "var/lib/satchel/backup", "var/lib/satchel/journal")
PKI = "etc/pki/engine"
PASSWORD = "keystore pw 0f8e"  # answered in some tests; must never show up


def _tree(root: Path) -> dict[str, Any]:
    return tree(root, lambda rel: rel.startswith(SKIP))


def _section() -> dict[str, Any]:
    return {"app": "engine", "pki": engine_section()["pki"]}


def _openssl(*args: str, input: str | None = None) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True,
                          input=input).stdout


def _meta(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def _fingerprint(root: Path) -> str:
    out = _openssl("x509", "-in", str(root / PKI / "ca.pem"), "-noout", "-fingerprint",
                   "-sha256")
    return out.strip().split("=", 1)[1]


def _logs(root: Path) -> str:
    return "".join(p.read_text() for p in sorted((root / "var/log/satchel").glob("*.log")))


def test_first_setup_makes_the_pki_and_a_rerun_changes_nothing(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    table = _section()
    table["pki"]["extract"].append({"cert": "engine", "to": "/var/lib/vdsm/engine.key",
                                    "owner": "vdsm", "group": "kvm", "mode": "0640"})
    setup_config(engine_root, table)
    before = _tree(engine_root)
    code, _, out = run_setup(engine_root, dry_run=True)
    assert code == EXIT_OK, out
    assert "create a CA in /etc/pki/engine (O=Example Org, 2048 bits, 3650 days)" in out
    assert "(vdsm:kvm, 0640)" in out
    assert _tree(engine_root) == before

    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    pki = engine_root / PKI
    for rel, mode in (("", 0o755), ("certs", 0o755), ("keys", 0o755), ("private", 0o700),
                      ("ca.pem", 0o644), ("serial.txt", 0o644), ("private/ca.key", 0o600),
                      ("private/keystore.password", 0o600)):
        assert _meta(pki / rel) == (mode, 0, 0), rel
    for name in ("engine", "apache"):
        assert _meta(pki / f"certs/{name}.cer") == (0o644, 0, 0)
        assert _meta(pki / f"private/{name}.key") == (0o600, 0, 0)
        assert _meta(pki / f"keys/{name}.p12") == (0o600, 0, 0)
        cert = str(pki / f"certs/{name}.cer")
        _openssl("verify", "-CAfile", str(pki / "ca.pem"), cert)
        subject = _openssl("x509", "-in", cert, "-noout", "-subject", "-nameopt", "RFC2253")
        assert subject.strip() == f"subject=CN={FQDN},O=Example Org"
        assert (_openssl("x509", "-in", cert, "-noout", "-pubkey")
                == _openssl("pkey", "-in", str(pki / f"private/{name}.key"), "-pubout"))
        # The keystore opens with the stored password and holds the cert, its key, the CA.
        password = (pki / "private/keystore.password").read_text()
        pem = _openssl("pkcs12", "-in", str(pki / f"keys/{name}.p12"), "-nodes", "-passin",
                       "stdin", input=password)
        assert pem.count("BEGIN CERTIFICATE") == 2 and "BEGIN PRIVATE KEY" in pem
    ca_subject = _openssl("x509", "-in", str(pki / "ca.pem"), "-noout", "-subject",
                          "-nameopt", "RFC2253")
    assert re.fullmatch(rf"subject=CN={re.escape(FQDN)}\.\d{{5}},O=Example Org\n", ca_subject)
    assert (pki / "serial.txt").read_text() == "1002\n"
    # Password-less copies for their consumers, as the recipe says.
    assert (pki / "keys/apache.key.nopass").read_bytes() == \
        (pki / "private/apache.key").read_bytes()
    assert (pki / "keys/engine_id_rsa").read_bytes() == (pki / "private/engine.key").read_bytes()
    assert _meta(pki / "keys/apache.key.nopass") == (0o600, 0, 0)
    assert _meta(engine_root / "var/lib/vdsm/engine.key") == (0o640, 36, 36)
    # Fingerprints printed, as openssl and ssh-keygen compute them.
    fingerprint = _fingerprint(engine_root)
    assert f"CA certificate /{PKI}/ca.pem: SHA-256 fingerprint {fingerprint}" in out
    keygen = subprocess.run(["ssh-keygen", "-lf",
                             str(engine_root / "etc/ssh/ssh_host_rsa_key.pub")],
                            check=True, capture_output=True, text=True).stdout.split()[1]
    assert f"SSH host key /etc/ssh/ssh_host_rsa_key.pub: fingerprint {keygen}" in out
    # Recorded: every file in the state registry; the CA with its fingerprint, the
    # password file without a checksum.
    files = runner.context.state.files("setup")
    assert files[f"/{PKI}/ca.pem"]["fingerprint"] == fingerprint
    assert files[f"/{PKI}/private/keystore.password"]["sha256"] is None
    assert files[f"/{PKI}/certs/engine.cer"]["sha256"]
    assert f"/{PKI}/keys/apache.p12" in files and f"/{PKI}/keys/engine_id_rsa" in files
    before = _tree(engine_root)

    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert runner.context.transaction.changes() == 0
    assert _tree(engine_root) == before
    assert fingerprint in out

    # A copy the recipe no longer names is removed (the other files stay).
    table["pki"]["extract"].pop()
    setup_config(engine_root, table)
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert not (engine_root / "var/lib/vdsm/engine.key").exists()
    assert "/var/lib/vdsm/engine.key" not in runner.context.state.files("setup")
    assert (pki / "keys/engine_id_rsa").exists()


def test_existing_ca_is_reused_and_only_a_missing_cert_is_made_again(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    setup_config(engine_root, _section())
    code, _, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    fingerprint = _fingerprint(engine_root)
    pki = engine_root / PKI
    (pki / "certs/apache.cer").unlink()
    (pki / "private/engine.key").chmod(0o644)  # put right, content kept
    before = _tree(engine_root)

    code, _, out = run_setup(engine_root, {"SETUP_PKI/organization": "Other Org",
                                           "SETUP_PKI/keySize": "3072"})
    assert code == EXIT_OK, out
    assert _fingerprint(engine_root) == fingerprint  # the CA was not made again
    after = _tree(engine_root)
    changed = sorted(rel for rel in set(before) | set(after)
                     if before.get(rel) != after.get(rel))
    # The new certificate (for the existing key), its keystore, the serial; the
    # setup's own answers file (new answers given).
    assert changed == [f"{PKI}/certs/apache.cer", f"{PKI}/keys/apache.p12",
                       f"{PKI}/private/engine.key", f"{PKI}/serial.txt",
                       "var/lib/satchel/setup/answers.conf", "var/lib/satchel/state.json"]
    assert _meta(pki / "private/engine.key") == (0o600, 0, 0)
    assert after[f"{PKI}/private/engine.key"][0] == before[f"{PKI}/private/engine.key"][0]
    assert (pki / "serial.txt").read_text() == "1003\n"
    _openssl("verify", "-CAfile", str(pki / "ca.pem"), str(pki / "certs/apache.cer"))
    subject = _openssl("x509", "-in", str(pki / "certs/apache.cer"), "-noout", "-subject",
                       "-nameopt", "RFC2253")
    assert "O=Other Org" in subject
    assert "issue /etc/pki/engine/certs/apache.cer" in _logs(engine_root)


def test_a_ca_key_that_does_not_match_its_certificate_is_refused(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    setup_config(engine_root, _section())
    code, _, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    key = engine_root / PKI / "private/ca.key"
    key.unlink()
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
             str(key))
    (engine_root / PKI / "certs/engine.cer").unlink()  # would be issued, if not refused
    before = _tree(engine_root)

    code, _, out = run_setup(engine_root)
    assert code == EXIT_REFUSED, out
    assert (f"the existing CA key /{PKI}/private/ca.key does not match its certificate "
            f"/{PKI}/ca.pem") in out
    assert _tree(engine_root) == before


def test_bad_answers_are_refused_naming_the_key(engine_root: Path, setup_config: Any,
                                                 run_setup: RunSetup) -> None:
    setup_config(engine_root, _section())
    before = _tree(engine_root)
    for key, value, message in (
            ("SETUP_PKI/keySize", "1000", "1000 is not allowed (2048 to 16384 bits"),
            ("SETUP_PKI/keySize", "2500", "2500 is not allowed"),
            ("SETUP_PKI/validityDays", "0", "0 is not allowed (1 to 36500 days)"),
            ("SETUP_PKI/organization", "Acme/Evil", "'Acme/Evil' contains '/'"),
            ("SETUP_PKI/organization", "Acme\nEvil", "contains '/', '\\' or a control"),
            ("SETUP_PKI/keystorePassword", "short", "not allowed (6 to 1023 characters")):
        code, _, out = run_setup(engine_root, {key: value})
        assert code == EXIT_USAGE, (key, value, out)
        assert f"{key}: " in out and message in out, (key, value, out)
        assert "'short'" not in out  # a password is never shown
        assert _tree(engine_root) == before, (key, value)


def test_secrets_stay_out_of_logs_and_argv(engine_root: Path, setup_config: Any,
                                           run_setup: RunSetup,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    argvs: list[list[str]] = []
    real = process.run

    def recording(argv: Any, **kw: Any) -> Any:
        argvs.append([str(a) for a in argv])
        return real(argv, **kw)

    monkeypatch.setattr(process, "run", recording)
    table = _section()
    table["tools"] = engine_section()["tools"]
    setup_config(engine_root, table)
    admin = "admin secret 7c1d"
    code, _, out = run_setup(engine_root, {"SETUP_PKI/keystorePassword": PASSWORD,
                                           "SETUP/adminPassword": admin})
    assert code == EXIT_OK, out
    assert any(a[:3] == ["openssl", "pkcs12", "-export"] for a in argvs)
    for secret in (PASSWORD, admin):
        assert not any(secret in arg for argv in argvs for arg in argv)
        assert secret not in _logs(engine_root) and secret not in out
        assert secret not in (engine_root / "var/lib/satchel/state.json").read_text()
        assert secret not in (engine_root / "var/lib/satchel/setup/answers.conf").read_text()
    assert (engine_root / PKI / "private/keystore.password").read_text() == PASSWORD + "\n"
    assert "+ openssl pkcs12 -export" in _logs(engine_root)

    # Not answered again: read back; the keystores still open with it, nothing changes.
    before = _tree(engine_root)
    code, runner, out = run_setup(engine_root)
    assert code == EXIT_OK, out
    assert runner.context.env["SETUP_PKI/keystorePassword"] == PASSWORD
    assert _tree(engine_root) == before

    # Another password: every keystore is exported again with it.
    code, runner, out = run_setup(engine_root, {"SETUP_PKI/keystorePassword": "changed-pw"})
    assert code == EXIT_OK, out
    _openssl("pkcs12", "-in", str(engine_root / PKI / "keys/engine.p12"), "-nodes", "-passin",
             "stdin", input="changed-pw\n")
    assert _fingerprint(engine_root) in out


def test_a_failure_at_closeup_removes_everything(engine_root: Path, setup_config: Any,
                                                  run_setup: RunSetup,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    section = engine_section()
    setup_config(engine_root, {"app": "engine", **{k: section[k] for k in (
        "sysctl", "runtime", "pki", "tools")}})
    before = _tree(engine_root)
    monkeypatch.setenv("SATCHEL_FAIL_AT", "closeup")
    code, _, out = run_setup(engine_root, {"SETUP/adminPassword": "admin-pw"})
    assert code == EXIT_FAILED, out
    assert "rolled back" in out
    assert _tree(engine_root) == before
    assert not (engine_root / PKI).exists()


@pytest.mark.parametrize("kind", ["rsa", "ed25519", "ecdsa"])
def test_ssh_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path, kind: str) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@x", "-f", str(key)],
                   check=True)
    keygen = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], check=True,
                            capture_output=True, text=True).stdout.split()[1]
    assert ssh_fingerprint(Path(f"{key}.pub").read_text()) == keygen
    assert ssh_fingerprint("ssh-rsa bm90IGEga2V5 x") is None
    assert ssh_fingerprint("not a key") is None


def test_attended_setup_asks_the_organization_and_the_admin_password(
        engine_root: Path, setup_config: Any, run_setup: RunSetup) -> None:
    table = _section()
    table["tools"] = engine_section()["tools"]
    setup_config(engine_root, table)
    # host name (kept), organization, admin user (kept), admin password, confirmation
    answers = io.StringIO("\nTyped Org\n\ntyped-admin-pw\nyes\n")
    code, _, out = run_setup(engine_root, unattended=False, stdin=answers)
    assert code == EXIT_OK, out
    assert "Organization name for the certificate authority [Example Org]: " in out
    assert "Password of admin@internal: " in out
    assert "typed-admin-pw" not in out
    assert "O=Typed Org" in _openssl("x509", "-in", str(engine_root / PKI / "ca.pem"),
                                     "-noout", "-subject", "-nameopt", "RFC2253")
    assert (engine_root / "etc/engine/.tools-password").read_text() == "typed-admin-pw\n"

    # Again, attended: the CA exists and the password is stored, so only the host
    # name (kept from the previous run) and the confirmation remain to answer.
    before = _tree(engine_root)
    code, runner, out = run_setup(engine_root, unattended=False, stdin=io.StringIO("yes\n"))
    assert code == EXIT_OK, out
    assert "Organization name" not in out and "Password of" not in out
    assert runner.context.transaction.changes() == 0
    assert _tree(engine_root) == before
