"""Encrypted secrets, decrypted on the fly: `openssl | zstd -d | tarfile`, so the
clear archive is never written to disk (the files themselves go through the file
set's staging area, mode 0700, like any other).

The builder encrypts with a passphrase (`openssl enc -aes-256-cbc -pbkdf2`) or to
a recipient certificate (`openssl cms -encrypt`, DER). To decrypt:

  passphrase  openssl enc -d ... -pass file:PASSPHRASE_FILE
  recipient   openssl cms -decrypt -inform DER -inkey KEY_FILE
              [-passin file:PASSPHRASE_FILE, when the key itself is encrypted]

The passphrase and the key stay in their files: openssl is given their paths
(never their content, in argv or in the log), nothing copies them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Iterator, List, Optional, Set

from installer.errors import InputError, ToolError

log = logging.getLogger("satchel.secrets")

METHODS = ("passphrase", "recipient")


def decrypt_argv(method: str, archive: Path, key_file: Optional[Path] = None,
                 passphrase_file: Optional[Path] = None) -> List[str]:
    if method == "passphrase":
        if passphrase_file is None:
            raise InputError("the secrets are encrypted with a passphrase and none was given",
                             hint="set IMPORT/secretsPassphraseFile=FILE")
        return ["openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "200000",
                "-in", str(archive), "-pass", f"file:{passphrase_file}"]
    if method == "recipient":
        if key_file is None:
            raise InputError("the secrets are encrypted to a recipient certificate and no "
                             "private key was given",
                             hint="set IMPORT/secretsKey=FILE (the certificate's private key)")
        argv = ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER",
                "-in", str(archive), "-inkey", str(key_file)]
        if passphrase_file is not None:
            argv += ["-passin", f"file:{passphrase_file}"]
        return argv
    raise InputError(f"the secrets are encrypted with {method!r}, which this installer "
                     f"does not know (known: {', '.join(METHODS)})")


def _check_readable(path: Optional[Path], key: str) -> None:
    if path is not None and not os.access(path, os.R_OK):
        raise InputError(f"{key}: {path} cannot be read")


@contextlib.contextmanager
def open_encrypted(archive: Path, method: str, key_file: Optional[Path] = None,
                   passphrase_file: Optional[Path] = None) -> Iterator[tarfile.TarFile]:
    """The decrypted archive as a tarfile stream; InputError when it cannot be
    decrypted (wrong key or passphrase, naming the file it came from)."""
    _check_readable(key_file, "IMPORT/secretsKey")
    _check_readable(passphrase_file, "IMPORT/secretsPassphraseFile")
    argv = decrypt_argv(method, archive, key_file, passphrase_file)
    for tool in ("openssl", "zstd"):
        if shutil.which(tool) is None:
            raise InputError(f"the {tool} tool is needed to decrypt the secrets",
                             hint=f"install the {tool} package")
    log.info("decrypting %s (%s) with openssl %s", archive.name, method, argv[1])
    env = {**os.environ, "LANG": "C.UTF-8"}
    openssl = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    assert openssl.stdout is not None and openssl.stderr is not None
    zstd = subprocess.Popen(["zstd", "-dcq"], stdin=openssl.stdout, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert zstd.stdout is not None and zstd.stderr is not None
    openssl.stdout.close()  # zstd has it now: openssl sees a closed pipe if zstd stops
    failed: Optional[BaseException] = None
    try:
        with tarfile.open(fileobj=zstd.stdout, mode="r|") as tf:
            yield tf
    except BaseException as exc:
        failed = exc
        raise
    finally:
        zstd.stdout.close()
        zstd_rc, openssl_rc = zstd.wait(), openssl.wait()
        zstd_err = zstd.stderr.read().decode("utf-8", "replace").strip()
        openssl_err = openssl.stderr.read().decode("utf-8", "replace").strip()
        zstd.stderr.close()
        openssl.stderr.close()
        # A negative code is a signal: the reader stopped early, and said why.
        if openssl_rc > 0 or (openssl_rc < 0 and failed is None):
            why = openssl_err.splitlines()[0] if openssl_err else f"exit code {openssl_rc}"
            given = ("IMPORT/secretsKey" if method == "recipient"
                     else "IMPORT/secretsPassphraseFile")
            raise InputError(f"{archive.name}: cannot decrypt the secrets: {why}",
                             hint=f"check {given} (the key or passphrase the bundle was "
                                  "encrypted for)") from None
        if zstd_rc != 0 and failed is None:
            raise ToolError(f"zstd failed with exit code {zstd_rc} on the decrypted "
                            f"{archive.name}: {zstd_err}")


def member_names(archive: Path, method: str, key_file: Optional[Path] = None,
                 passphrase_file: Optional[Path] = None) -> Set[str]:
    """The names in the encrypted archive: a full decryption that writes nothing,
    to find a wrong key or passphrase before any change."""
    try:
        with open_encrypted(archive, method, key_file, passphrase_file) as tf:
            return {m.name for m in tf}
    except tarfile.TarError as exc:
        raise InputError(f"{archive.name}: the decrypted secrets are not an archive "
                         f"({exc})", hint="check the key or passphrase given") from None
