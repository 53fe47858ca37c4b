"""After the import: the installer stays on the target for later actions, the
result is audited against the manifest, and a summary of what changed is shown.

The audit (closeup, after the commit): the hash of every restored file, `rpm -V`
of the bundle's packages (logged; it runs beside the other two), and the row
count of every table of every restored database, counted again now that it is in
place under its name. What
differs is logged as a warning and counted in the summary; the audit itself
never fails the run (the import is committed by then)."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from installer import engine
from installer.engine import Stages
from installer.engine.fsutil import sha256_file
from installer.errors import SatchelError
from installer.restore import bundleinfo
from installer.restore.extract import HostPaths

INSTALLER_PATH = "/usr/libexec/satchel/install"


class Plugin(engine.PluginBase):
    @engine.event(stage=Stages.MISC, name="import.installer", priority=engine.PRIO_LAST,
                  after=("import.files",))
    def _keep_installer(self) -> None:
        data = (bundleinfo.bundle_dir(self.bundle) / "install").read_bytes()
        target = self.resolve(INSTALLER_PATH)
        if target.is_file() and sha256_file(target) == hashlib.sha256(data).hexdigest():
            return
        self.transaction.append(engine.FileWrite(INSTALLER_PATH, data, 0o755, "root", "root",
                                                 step_id="installer"))

    @engine.event(stage=Stages.CLOSEUP, name="import.audit")
    def _audit(self) -> None:
        nevras = [p["nevra"] for p in bundleinfo.component(self.bundle, "repo")
                  .get("packages", [])]
        with ThreadPoolExecutor(max_workers=1) as pool:
            # rpm -V reads the packages' files while the files and rows are checked
            rpm_lines = pool.submit(self._rpm_verify, nevras) if nevras else None
            problems = self._file_problems() + self._database_problems()
            for line in rpm_lines.result() if rpm_lines is not None else []:
                self.log.info("rpm -V: %s", line)
        for p in problems:
            self.log.warning("audit: %s", p)
        changes = self._changes()
        summary = ", ".join(f"{n} {what}" for what, n in sorted(changes.items()) if n) \
            or "nothing changed: the target already matched the bundle"
        self.dialog.note(f"Import summary: {summary}" +
                         (f"; audit found {len(problems)} problem(s), see the log"
                          if problems else "; audit: everything matches the manifest"))

    def _rpm_verify(self, nevras: List[str]) -> List[str]:
        from installer.restore.packages import audit as rpm_audit

        return rpm_audit(self.root, nevras)

    def _file_problems(self) -> List[str]:
        """Each restored file against the manifest's hash, read where the target
        sees it (parents resolved inside the root)."""
        problems: List[str] = []
        for fs in self._sets():
            hosts = HostPaths(self.resolve, self.root)
            for rel, rec in fs["index"].items():
                if rec["type"] != "file":
                    continue
                host = hosts(rel)
                if not host.is_file():
                    problems.append(f"/{rel}: missing after the import")
                elif sha256_file(host) != rec["sha256"]:
                    problems.append(f"/{rel}: differs from the bundle")
        return problems

    def _database_problems(self) -> List[str]:
        entries = bundleinfo.component(self.bundle, "database").get("databases") or []
        if not entries:
            return []
        from installer.restore.database import conn_params, count_problems, row_counts

        problems = []
        try:
            params = conn_params(self.env)
            for entry in entries:
                found = count_problems(entry, row_counts(params, entry["name"]))
                problems += [f"database {entry['name']}: {p}" for p in found]
                if not found:
                    self.log.info("audit: database %s: the row counts of its %d tables match",
                                  entry["name"], len(entry.get("tables", {})))
        except SatchelError as exc:
            problems.append(f"database: cannot count the rows again: {exc.message}")
        return problems

    def _sets(self) -> List[Dict[str, Any]]:
        sets = list(bundleinfo.component(self.bundle, "filesets").get("sets", []))
        secrets = bundleinfo.component(self.bundle, "secrets")
        return [*sets, secrets] if secrets else sets

    def _changes(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for element in self.transaction.committed:
            for rec in element.records():
                kind = rec.get("kind", "")
                what = {"file": f"files {rec.get('how', 'written')}", "dir": "directories created",
                        "package": "packages installed", "database": "databases restored",
                        "service": "services enabled"}.get(kind, kind)
                counts[what] = counts.get(what, 0) + 1
        return counts
