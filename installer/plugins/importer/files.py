"""File sets and secrets: planned from the manifest's index (create, replace or
already identical), restored by streaming each archive through the transaction."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List

from installer import engine
from installer.engine import Stages
from installer.errors import InputError, RefusedError
from installer.restore import bundleinfo
from installer.restore.extract import ExtractSet, classify
from installer.restore.tarstream import Owners

DISK_MARGIN = 64 << 20  # keep this much free beyond what the plan writes


class _Rec:
    """Index record as a tarfile-like object for the owner mapping."""

    def __init__(self, rec: Dict[str, Any]) -> None:
        self.uname, self.gname = rec.get("user", ""), rec.get("group", "")
        self.uid, self.gid = int(rec.get("uid", 0)), int(rec.get("gid", 0))


class Plugin(engine.PluginBase):
    KEYS = (
        engine.Key("IMPORT/secretsPassphraseFile", "path", default=None,
                   doc="file holding the passphrase of encrypted secrets (first line)"),
    )

    def _sets(self) -> List[Dict[str, Any]]:
        sets = list(bundleinfo.component(self.bundle, "filesets").get("sets", []))
        secrets = bundleinfo.component(self.bundle, "secrets")
        if secrets:
            sets.append(dict(secrets, name="secrets"))
        return sets

    @engine.event(stage=Stages.VALIDATION, name="import.files.plan")
    def _plan(self) -> None:
        owners = Owners(self.root)
        needed = 0
        for fs in self._sets():
            counts = {"create": 0, "replace": 0, "meta": 0, "identical": 0}
            for rel, rec in fs["index"].items():
                how = classify(self.root, rel, rec, owners.uid(_Rec(rec)),  # type: ignore[arg-type]
                               owners.gid(_Rec(rec)))  # type: ignore[arg-type]
                counts[how] += 1
                if how in ("create", "replace"):
                    needed += int(rec.get("size", 0))
            self.plan(f"files {fs['name']}: {counts['create']} to create, {counts['replace']} "
                      f"to replace, {counts['meta']} to re-own or re-mode, "
                      f"{counts['identical']} already identical")
        for w in owners.warnings:
            self.plan(f"warning: {w}")
        # Staged copy plus backups of replaced files: twice what is written, at worst.
        free = shutil.disk_usage(self.root).free
        if 2 * needed + DISK_MARGIN > free:
            raise RefusedError(f"not enough disk space under {self.root}: the files need about "
                               f"{(2 * needed + DISK_MARGIN) >> 20} MiB, {free >> 20} MiB free")

    @engine.event(stage=Stages.MISC, name="import.files")
    def _restore(self) -> None:
        bundle = bundleinfo.bundle_dir(self.bundle)
        for fs in self._sets():
            archive_key = "archive"
            if fs.get("encrypt", "none") != "none":
                fs = dict(fs, archive=str(self._decrypt(bundle, fs)))
            element = ExtractSet(bundle, fs, archive_key, step_id=f"files:{fs['name']}")
            self.transaction.append(element)
            for w in element.warnings:
                self.log.warning("%s", w)
            self.log.info("file set %s: %d changed, %d already identical", fs["name"],
                          len(element.changes), element.identical)

    def _decrypt(self, bundle: Path, fs: Dict[str, Any]) -> Path:
        """Decrypt the secrets archive into the state directory (mode 0600)."""
        passfile = self.env["IMPORT/secretsPassphraseFile"]
        if fs["encrypt"] == "passphrase" and passfile is None:
            raise InputError("the secrets are encrypted and no passphrase was given",
                             hint="set IMPORT/secretsPassphraseFile=FILE")
        out_dir = self.root / "var/lib/satchel/staging"
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = out_dir / "secrets.tar.zst"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self.run(["openssl", "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-iter", "200000",
                  "-in", str(bundle / fs["archive"]), "-out", str(out),
                  "-pass", f"file:{passfile}"])
        return out
