"""File sets and secrets: planned from the manifest's index (create, replace or
already identical), restored by streaming each archive through the transaction;
and the disk space the whole plan needs, checked before any change.

Answer keys:

  IMPORT/secretsPassphraseFile=path:FILE  file whose first line is the passphrase of
                             secrets encrypted with a passphrase, or of the private key
                             IMPORT/secretsKey when that key is itself encrypted
  IMPORT/secretsKey=path:FILE  private key (PEM) of the certificate the secrets were
                             encrypted to (`[secrets] encrypt = "recipient"`); given to
                             openssl by its path, never copied or logged

Encrypted secrets are decrypted on the fly (installer.restore.secrets), once at
validation to prove the key or passphrase is right (a wrong one is refused before
any change, exit 2) and again when they are restored.

Disk space (validation, after the file plan and before the packages' plan):
per file system of the target, the files of the packages not installed yet (from
their RPM headers), the files of each set to create or replace, their staging
copies where the staging area is on another file system, and the backups of
replaced files, plus a margin (a tenth, at least 4 MiB; 32 MiB more on the file
system of the rpmdb when packages are installed). A shortfall is refused (exit 3)
naming the mount point, what the plan needs and what is available.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from installer import engine
from installer.engine import Stages
from installer.errors import InputError, RefusedError
from installer.restore import bundleinfo
from installer.restore.extract import ExtractSet, HostPaths, classify
from installer.restore.packages import DBPATH, payload_sizes
from installer.restore.secrets import member_names, open_encrypted
from installer.restore.space import SYSTEM_MARGIN, SpaceNeeds
from installer.restore.tarstream import Owners, RecordOwner

STATE_DIR = "var/lib/satchel"


class Plugin(engine.PluginBase):
    KEYS = (
        engine.Key("IMPORT/secretsPassphraseFile", "path", default=None,
                   doc="file holding the passphrase of encrypted secrets, or of an "
                       "encrypted IMPORT/secretsKey (first line)"),
        engine.Key("IMPORT/secretsKey", "path", default=None,
                   doc="private key (PEM) of the certificate the secrets were encrypted "
                       "to; read by openssl in place, never copied or logged"),
    )

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._space = SpaceNeeds(self.root)
        self._ahead: List[ExtractSet] = []  # staging since early_misc

    def _sets(self) -> List[Dict[str, Any]]:
        sets = list(bundleinfo.component(self.bundle, "filesets").get("sets", []))
        secrets = bundleinfo.component(self.bundle, "secrets")
        if secrets:
            sets.append(dict(secrets, name="secrets"))
        return sets

    def _path(self, key: str) -> Optional[Path]:
        value = self.env[key]
        return Path(str(value)) if value is not None else None

    @contextlib.contextmanager
    def _decrypted(self, archive: Path, method: str) -> Iterator[Any]:
        with open_encrypted(archive, method, self._path("IMPORT/secretsKey"),
                            self._path("IMPORT/secretsPassphraseFile")) as tf:
            yield tf

    @engine.event(stage=Stages.VALIDATION, name="import.files.plan")
    def _plan(self) -> None:
        owners = Owners(self.root)
        bundle = bundleinfo.bundle_dir(self.bundle)
        staging = self.root / STATE_DIR / "staging" / "file"
        backups = self.root / STATE_DIR / "backup" / "file"
        for fs in self._sets():
            if fs.get("encrypt", "none") != "none":
                self._check_decryption(bundle, fs)
            counts = {"create": 0, "replace": 0, "meta": 0, "identical": 0}
            hosts = HostPaths(self.resolve, self.root)
            for rel, rec in fs["index"].items():
                host = hosts(rel)
                who = RecordOwner(rec)
                how = classify(host, rec, owners.uid(who), owners.gid(who))
                counts[how] += 1
                if how not in ("create", "replace"):
                    continue
                size = int(rec.get("size", 0)) if rec["type"] == "file" else 0
                self._space.add(host, size, 1 if how == "create" else 0)
                if size and not self._space.same_fs(staging, host):
                    self._space.add(staging, size)
                if how == "replace" and os.path.isfile(host) and not os.path.islink(host):
                    self._space.add(backups, os.lstat(host).st_size)
            self.plan(f"files {fs['name']}: {counts['create']} to create, {counts['replace']} "
                      f"to replace, {counts['meta']} to re-own or re-mode, "
                      f"{counts['identical']} already identical")
        for w in owners.warnings:
            self.plan(f"warning: {w}")

    def _check_decryption(self, bundle: Path, fs: Dict[str, Any]) -> None:
        names = member_names(bundle / fs["archive"], fs["encrypt"],
                             self._path("IMPORT/secretsKey"),
                             self._path("IMPORT/secretsPassphraseFile"))
        if names != set(fs["index"]):
            raise InputError(f"{fs['archive']}: the decrypted secrets do not match the "
                             "manifest's index", hint="run `install verify`")
        self.log.info("secrets: decrypted and checked (%d entries)", len(names))

    @engine.event(stage=Stages.VALIDATION, name="import.space",
                  after=("import.files.plan",), before=("import.packages.plan",))
    def _check_space(self) -> None:
        bundle = bundleinfo.bundle_dir(self.bundle)
        manifest = bundleinfo.manifest(self.bundle)
        files = payload_sizes(self.root, bundle, manifest)
        for path, size in files:
            self._space.add(path, size)
        if files:
            self._space.reserve(DBPATH, SYSTEM_MARGIN)
        problems = self._space.problems()
        if problems:
            raise RefusedError("not enough disk space for this import:\n  " +
                               "\n  ".join(problems),
                               hint="free space there (or grow the file system), then run "
                                    "again; nothing was changed")

    @engine.event(stage=Stages.EARLY_MISC, name="import.files.ahead")
    def _start(self) -> None:
        """Start staging the sets now, beside dnf and the database restore: prepare
        only writes under the staging area, and commit classifies again whatever
        the packages changed meanwhile (see installer.restore.extract)."""
        bundle = bundleinfo.bundle_dir(self.bundle)
        for fs in self._sets():
            method = fs.get("encrypt", "none")
            opener = None
            if method != "none":
                def opener(archive: Path, method: str = method) -> Any:
                    return self._decrypted(archive, method)
            element = ExtractSet(bundle, fs, step_id=f"files:{fs['name']}", opener=opener)
            self.transaction.prepare_ahead(element, lane="files")
            self._ahead.append(element)

    @engine.event(stage=Stages.MISC, name="import.files")
    def _restore(self) -> None:
        for element in self._ahead:
            self.transaction.append(element)
            for w in element.warnings:
                self.log.warning("%s", w)
            self.log.info("file set %s: %d changed, %d already identical",
                          element.fileset["name"],
                          len(element.changes), element.identical)
