"""Encrypted secrets: bundles built with `[secrets] encrypt = "recipient"` (openssl cms
to a certificate) and `"passphrase"` (openssl enc), imported with the private key
(IMPORT/secretsKey) or the passphrase file. Real openssl-generated key pairs; a
missing or wrong key is refused at validation, before any change; the key is
never logged or copied, and no clear copy of the secrets stays on disk."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.output import OutputFormat
from bundler.progress import Progress
from tests.importer.helpers import OS_RELEASE, SDE, differences, run_import, snapshot

pytestmark = [pytest.mark.root]

RECIPE = f"""
[bundle]
name = "sec"
version = "1"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
source_date_epoch = {SDE}

[secrets]
root = "pki"
paths = ["etc/pki/app"]
encrypt = "{{method}}"
{{extra}}
"""

SECRET = "-----BEGIN PRIVATE KEY-----\nthe application's own secret key\n"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key_pair(where: Path, name: str, passphrase: Path | None = None) -> tuple[Path, Path]:
    key, cert = where / f"{name}.key", where / f"{name}.crt"
    enc = ["-aes256", "-pass", f"file:{passphrase}"] if passphrase else []
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", *enc,
             "-out", str(key))
    os.chmod(key, 0o600)
    passin = ["-passin", f"file:{passphrase}"] if passphrase else []
    _openssl("req", "-x509", "-new", "-key", str(key), *passin, "-subj", f"/CN={name}",
             "-days", "2", "-out", str(cert))
    return key, cert


def _private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("keys")
    out: dict[str, Path] = {"pass": _private(where / "pass", "correct horse battery\n")}
    out["key"], out["cert"] = _key_pair(where, "target")
    out["other_key"], _ = _key_pair(where, "someone-else")
    out["enc_key"], out["enc_cert"] = _key_pair(where, "locked", passphrase=out["pass"])
    return out


def _bundle(where: Path, method: str, **secrets: Path) -> Path:
    pki = where / "pki/etc/pki/app"
    pki.mkdir(parents=True)
    _private(pki / "app.key", SECRET)
    (pki / "app.crt").write_text("-----BEGIN CERTIFICATE-----\npublic\n")
    extra = "\n".join(f'{k} = "{v}"' for k, v in secrets.items())
    recipe = recipes.parse(where / "r.toml", RECIPE.format(method=method, extra=extra))
    return build(recipe, where / "bundle", OutputFormat.dir,
                 progress=Progress(quiet=True)).path


@pytest.fixture(scope="module")
def recipient_bundle(keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bundle(tmp_path_factory.mktemp("recipient"), "recipient",
                   recipient_cert=keys["cert"])


def _root(where: Path) -> Path:
    (where / "etc").mkdir(parents=True)
    (where / "etc/os-release").write_text(OS_RELEASE)
    return where


def _files_holding(root: Path, data: bytes) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and data in p.read_bytes())


def test_recipient_encrypted_secrets_are_restored_with_the_private_key(
        recipient_bundle: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    assert (recipient_bundle / "secrets/secrets.tar.zst.enc").is_file()
    root = _root(tmp_path / "root")
    r = run_import(recipient_bundle, root, "--set", f"IMPORT/secretsKey={keys['key']}")
    assert r.returncode == 0, r.stdout + r.stderr
    app_key = root / "etc/pki/app/app.key"
    assert app_key.read_text() == SECRET and app_key.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/pki/app/app.crt").read_text().endswith("public\n")
    # The clear secret is at its place only; the decryption key is nowhere in the root
    # (log included), and the staging area is empty.
    assert _files_holding(root, b"the application's own secret key") == ["etc/pki/app/app.key"]
    assert _files_holding(root, keys["key"].read_bytes()[40:120]) == []
    assert not any((root / "var/lib/satchel/staging").iterdir())
    again = run_import(recipient_bundle, root, "--set", f"IMPORT/secretsKey={keys['key']}")
    assert again.returncode == 0 and "nothing changed" in again.stdout + again.stderr


def test_a_missing_or_wrong_key_is_refused_before_any_change(
        recipient_bundle: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    root = _root(tmp_path / "root")
    before = snapshot(root)
    r = run_import(recipient_bundle, root)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no private key was given" in r.stderr and "IMPORT/secretsKey" in r.stderr
    r = run_import(recipient_bundle, root, "--set", f"IMPORT/secretsKey={keys['other_key']}")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot decrypt the secrets" in r.stderr and "check IMPORT/secretsKey" in r.stderr
    r = run_import(recipient_bundle, root, "--set", f"IMPORT/secretsKey={tmp_path}/nokey")
    assert r.returncode == 2 and "cannot be read" in r.stderr, r.stderr
    changed = differences(before, snapshot(root))
    assert all(k.startswith("var") for k in changed), changed
    assert not (root / "etc/pki").exists()


def test_an_encrypted_private_key_is_opened_with_the_passphrase_file(
        keys: dict[str, Path], tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", "recipient", recipient_cert=keys["enc_cert"])
    root = _root(tmp_path / "root")
    r = run_import(bundle, root, "--set", f"IMPORT/secretsKey={keys['enc_key']}",
                   "--set", f"IMPORT/secretsPassphraseFile={keys['pass']}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / "etc/pki/app/app.key").read_text() == SECRET


def test_passphrase_encrypted_secrets(keys: dict[str, Path], tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", "passphrase", passphrase_file=keys["pass"])
    root = _root(tmp_path / "root")
    wrong = _private(tmp_path / "wrong", "not it\n")
    r = run_import(bundle, root, "--set", f"IMPORT/secretsPassphraseFile={wrong}")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cannot decrypt the secrets" in r.stderr
    assert not (root / "etc/pki").exists()
    r = run_import(bundle, root, "--set", f"IMPORT/secretsPassphraseFile={keys['pass']}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (root / "etc/pki/app/app.key").read_text() == SECRET
    assert _files_holding(root, b"the application's own secret key") == ["etc/pki/app/app.key"]
