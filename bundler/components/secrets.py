"""Keys and certs: a pax tar under secrets/, mode 0600, optionally encrypted.

Encryption covers the secrets part only, so the rest of the bundle stays
inspectable. `passphrase` uses `openssl enc -aes-256-cbc -pbkdf2` with the
passphrase read from a file (never a command line); `recipient` uses
`openssl cms -encrypt` to a certificate. Both stream: libarchive -> openssl ->
staging, hashed on the way. Encrypted output is salted, so it is the one part of
a bundle that is not byte-reproducible (by design).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from typing import Any, Optional

from bundler.archive import walk, write_tree
from bundler.components import BuildContext
from bundler.owners import OwnerNames
from bundler.recipe import Secrets
from installer.errors import InputError, ToolError

ARCHIVE = "secrets/secrets.tar.zst"


def _root(ctx: BuildContext, s: Secrets) -> Any:
    return s.root if s.root is not None else ctx.source_root


def check(ctx: BuildContext) -> None:
    s = ctx.recipe.secrets
    if s is None:
        return
    w = walk(_root(ctx, s), s.paths, ())
    problems = list(w.problems)
    for f in (s.passphrase_file, s.recipient_cert):
        if f is not None and not os.access(f, os.R_OK):
            problems.append(f"{f}: not readable")
    if s.encrypt != "none" and shutil.which("openssl") is None:
        problems.append("openssl is needed to encrypt the secrets and was not found")
    if problems:
        raise InputError("cannot read the secrets:\n  " + "\n  ".join(problems))


def _openssl_argv(s: Secrets) -> list[str]:
    if s.encrypt == "passphrase":
        return ["openssl", "enc", "-aes-256-cbc", "-pbkdf2", "-iter", "200000", "-salt",
                "-pass", f"file:{s.passphrase_file}"]
    return ["openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER",
            "-stream", str(s.recipient_cert)]


def build(ctx: BuildContext) -> Optional[dict[str, Any]]:
    s = ctx.recipe.secrets
    if s is None:
        return None
    check(ctx)
    w = walk(_root(ctx, s), s.paths, ())
    rel = ARCHIVE if s.encrypt == "none" else ARCHIVE + ".enc"
    with ctx.progress.step("archiving secrets", total=len(w.members)) as p, \
            ctx.staging.open(rel, mode=0o600) as out:
        if s.encrypt == "none":
            index = write_tree(out.write, w.members, source_date_epoch=ctx.source_date_epoch,
                               advance=p.advance, names=OwnerNames(ctx.source_root))
        else:
            index = _encrypted(ctx, s, w.members, out.write, p.advance)
    # Secrets' hashes stay in the manifest (they reveal nothing of the content),
    # so the import can audit them like any other file.
    return {"archive": rel, "encrypt": s.encrypt, "paths": list(s.paths),
            "entries": len(index), "index": index}


def _encrypted(ctx: BuildContext, s: Secrets, members: Any, write: Any,
               advance: Any) -> dict[str, Any]:
    proc = subprocess.Popen(_openssl_argv(s), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "LANG": "C.UTF-8"})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout

    def pump() -> None:
        while chunk := stdout.read(1 << 16):
            write(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        index = write_tree(proc.stdin.write, members, source_date_epoch=ctx.source_date_epoch,
                           advance=advance, names=OwnerNames(ctx.source_root))
    finally:
        proc.stdin.close()
    reader.join()
    err = proc.stderr.read().decode("utf-8", "replace").strip()
    if proc.wait() != 0:
        raise ToolError(f"openssl failed with exit code {proc.returncode} while encrypting "
                        f"the secrets: {err.splitlines()[-1] if err else 'no output'}")
    return index
