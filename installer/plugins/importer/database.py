"""The database: each dump of the bundle restored into a new database, checked
against the manifest's row counts and checksums, and renamed into place (see
installer.restore.database). Active only when the manifest has a database section.

Answer keys:

  DB/host=str:localhost      server host name, address or unix socket directory
  DB/port=int:5432           server port (1-65535)
  DB/user=str:postgres       role to connect as: a superuser, or one that may create
                             databases and roles
  DB/passwordFile=path:FILE  file whose first line is the password (optional)
  DB/password=str:SECRET     the password (secret, optional; asked with hidden input
                             when neither is given and the run is not unattended;
                             never put on a command line or logged)
  IMPORT/replaceDb=bool:false  replace an existing non-empty database (--replace-db);
                             the old one is kept until the import commits

Validation, before any change: the server is reachable and the password right
(exit 2 otherwise, the message never shows the password), its major version is
not older than the dump's and a pg_restore not older than the dump's pg_dump is
installed (exit 3), an existing non-empty database that differs from the bundle
is refused without IMPORT/replaceDb (exit 3). The plan says for each database:
restore into a new database, replace the existing one, or already identical.

The restores start in early_misc, in a background worker of their own
(`prepare_ahead`, lane "database"), and run while the packages are installed and
the file sets are staged; misc waits for each
and commits it (the rename into place) in the usual order.
"""

from __future__ import annotations

from typing import Any, Dict, List

from installer import engine
from installer.engine import Stages
from installer.errors import RefusedError
from installer.restore import bundleinfo
from installer.restore.database import (
    ConnParams,
    RestoreDatabase,
    Server,
    check_compression,
    conn_params,
    drop_leftover_old,
    inspect,
    pg_restore_path,
    roles_in,
)

KEYS = (
    engine.Key("DB/host", str, default="localhost",
               doc="PostgreSQL server host (name, address or unix socket directory)"),
    engine.Key("DB/port", int, default=5432, doc="PostgreSQL server port"),
    engine.Key("DB/user", str, default="postgres",
               doc="PostgreSQL role to connect as (superuser, or may create databases "
                   "and roles)"),
    engine.Key("DB/passwordFile", "path", default=None,
               doc="file whose first line is the database password"),
    engine.Key("DB/password", str, secret=True, default=None,
               doc="PostgreSQL password (hidden input)"),
    engine.Key("IMPORT/replaceDb", bool, default=False,
               doc="replace an existing non-empty database (kept until the import commits)"),
)


def _has_db(plugin: Any) -> bool:
    return bool(bundleinfo.component(plugin.bundle, "database").get("databases"))


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._ahead: List[RestoreDatabase] = []  # restoring since early_misc
        self._elements: List[RestoreDatabase] = []
        self._skipped: List[str] = []

    def _section(self) -> Dict[str, Any]:
        return bundleinfo.component(self.bundle, "database")

    def _params(self) -> ConnParams:
        return conn_params(self.env)

    @engine.event(stage=Stages.CUSTOMIZATION, name="import.database.ask", condition=_has_db)
    def _ask(self) -> None:
        self.dialog.ask("DB/host", "PostgreSQL server host")
        self.dialog.ask("DB/port", "PostgreSQL server port")
        self.dialog.ask("DB/user", "PostgreSQL user")
        if (not self.dialog.unattended and self.env["DB/passwordFile"] is None
                and not self.env.answered("DB/password")):
            self.dialog.ask("DB/password", f"Password of PostgreSQL user {self.env['DB/user']}")

    @engine.event(stage=Stages.VALIDATION, name="import.database.plan", condition=_has_db,
                  after=("import.compat",))
    def _plan(self) -> None:
        section = self._section()
        params = self._params()
        with Server(params) as srv:
            major = srv.major
            want = int(section.get("server_major") or 0)
            if major < want:
                raise RefusedError(f"the target's PostgreSQL is {major}, older than the "
                                   f"dump's server ({want})",
                                   hint=f"install PostgreSQL {want} or newer on the target")
            tool = pg_restore_path(int(section.get("pg_dump_major") or want), major)
            self.log.info("database: server %s (PostgreSQL %d), %s", params.where, major, tool)
            superuser, createdb, createrole = srv.privileges()
            if not (superuser or createdb):
                raise RefusedError(f"database: {params.user} may not create databases",
                                   hint="connect as a superuser (DB/user)")
            roles = section.get("roles") or {}
            if roles.get("path"):
                text = (bundleinfo.bundle_dir(self.bundle) / roles["path"]).read_text(
                    encoding="utf-8")
                names = roles_in(text)
                missing = [r for r in names if not srv.role_exists(r)]
                if missing and not (superuser or createrole):
                    raise RefusedError(f"database: {params.user} may not create the roles "
                                       f"{', '.join(missing)}",
                                       hint="connect as a superuser (DB/user)")
                self.plan(f"database roles: {len(missing)} to create, "
                          f"{len(names) - len(missing)} already present")
            replace = self.env["IMPORT/replaceDb"]
            for entry in section.get("databases", []):
                check_compression(entry)  # refused here, before any change
                name = entry["name"]
                tables = entry.get("tables", {})
                rows = sum(t["rows"] for t in tables.values())
                what = f"{len(tables)} tables, {rows} rows"
                status = inspect(srv, entry)
                if status == "identical":
                    self.plan(f"database {name}: already identical to the bundle ({what})")
                elif status == "absent":
                    self.plan(f"database {name}: restore into a new database ({what})")
                elif status == "empty":
                    self.plan(f"database {name}: exists and is empty: restore ({what}) and "
                              "replace it")
                elif replace:
                    self.plan(f"database {name}: replace the existing database ({what}); the "
                              "old one is kept until the import commits")
                else:
                    raise RefusedError(f"database {name} already exists on {params.host}:"
                                       f"{params.port}, is not empty and differs from the "
                                       "bundle", hint="use --replace-db (IMPORT/replaceDb="
                                                      "true) to replace it")

    @engine.event(stage=Stages.EARLY_MISC, name="import.database.ahead", condition=_has_db)
    def _start(self) -> None:
        """Start restoring into the side databases now: nothing uses them until the
        commit in misc renames them, so the restore runs while dnf installs."""
        params = self._params()
        replace = self.env["IMPORT/replaceDb"]
        for entry in self._section().get("databases", []):
            element = RestoreDatabase(bundleinfo.bundle_dir(self.bundle), entry, params,
                                      replace=replace, step_id=f"database:{entry['name']}")
            self.transaction.prepare_ahead(element, lane="database")
            self._ahead.append(element)

    @engine.event(stage=Stages.MISC, name="import.database", condition=_has_db)
    def _restore(self) -> None:
        for element in self._ahead:
            name = element.name
            if self.transaction.append(element):
                self._elements.append(element)
                if element.already:
                    self.dialog.note(f"database {name}: already identical to the "
                                     "bundle, nothing changed")
            else:
                self._skipped.append(name)

    @engine.event(stage=Stages.CLEANUP, name="import.database.finalize",
                  priority=engine.PRIO_LAST, condition=_has_db)
    def _finalize(self) -> None:
        # The engine empties the committed list when it rolls back: elements still
        # in it belong to a run that succeeded.
        committed = self.transaction.committed
        if not committed:
            return
        for element in self._elements:
            if element in committed:
                element.finalize()
        for name in self._skipped:  # done by an interrupted run, resumed now
            drop_leftover_old(self._params(), name)
