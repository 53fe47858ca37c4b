"""The database setup made: dropped (after a pg_dump backup), or kept for the next
setup to reuse.

Asks engine-cleanup's question, unless answered (-d, --set, an answer file):

    Drop database? If you want to reuse the existing database for the future
    installation choose no. [no]

(default no; with --unattended no question and the database is dropped).

Dropping, for each database in setup's records (name, host, port, the
application's role, the .pgpass setup wrote):
- connect as the application's role, with the password from that .pgpass (read
  before anything changes; an owner may drop its database), or as the admin role
  when DB/user, DB/passwordFile or DB/password are given (DB/host, DB/port default
  to setup's); with the admin connection the application's role is dropped too
  when setup created it (a role that still owns or holds something elsewhere is
  kept, and said so);
- before any change: the server answers, a pg_dump not older than the server is
  installed (else refused, exit 3; -d keeps the database instead);
- the drop comes last in misc, after the backup (pg_dump -Fc, mode 0600, checked
  with pg_restore -l) under /var/lib/satchel/backup/cleanup/ whose path is
  printed; undo makes the database (and the role) again from it (pg_restore -C).
  Undo needs a role that may create databases: without the admin connection, when
  the application's role may not, the plan says that a failure after the drop
  leaves the restore to be done by hand (the run then exits 5 naming the backup);
- the .pgpass: when the role is dropped, setup's line goes (the file too when it
  is setup's and holds nothing else). A role that stays (no admin connection)
  keeps its password line, so the next setup can log in as it and make the
  database again (without it setup would find a role it has no password for);
  the file is then no longer setup's to remove;
- a database that no longer exists is just forgotten.

Keeping it (-d): the database, its record and the .pgpass stay, so the next
setup connects to it and upgrades it when needed; cleanup ends with
"Note: after re-installing, hosts have to be re-installed or re-approved."
A database setup did not create (it installed into an empty one it was given) is
dropped all the same when the answer is yes: the next setup then needs the admin
connection to create it.

Answer keys:

  CLEANUP/dropDatabase=bool   drop the database (see above)
  DB/host=str                 admin connection: server host (default: setup's)
  DB/port=int                 admin connection: server port (default: setup's)
  DB/user=str                 admin connection: a role that may drop databases and
                              roles (optional)
  DB/passwordFile=path:FILE   admin connection: file whose first line is the password
  DB/password=str:SECRET      admin connection: the password (secret)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT
from installer.errors import InputError, RefusedError
from installer.plugins.cleanup import _facts
from installer.plugins.cleanup._dropdb import DropDatabase
from installer.plugins.cleanup._elements import PgpassRewrite, RemoveFile
from installer.restore.database import (
    ConnParams,
    Server,
    majors_found,
    pg_bindirs,
    pick_major,
    read_password_file,
)

PROMPT = ("Drop database? If you want to reuse the existing database for the future "
          "installation choose no.")
KEYS = (
    engine.Key("CLEANUP/dropDatabase", bool, default=None,
               doc="drop the application's database after a pg_dump backup (asked: "
                   "default no; --unattended: yes; -d: no)"),
    engine.Key("DB/host", str, default=None,
               doc="admin connection: PostgreSQL server host (default: setup's)"),
    engine.Key("DB/port", int, default=None,
               doc="admin connection: PostgreSQL server port (default: setup's)"),
    engine.Key("DB/user", str, default=None,
               doc="admin connection: a role that may drop databases and roles (optional)"),
    engine.Key("DB/passwordFile", "path", default=None,
               doc="admin connection: file whose first line is the password"),
    engine.Key("DB/password", str, secret=True, default=None,
               doc="admin connection: the password (hidden input)"),
)


@dataclass(frozen=True)
class Target:
    """A database setup recorded, with what is needed to reach it."""

    name: str
    host: str
    port: int
    user: str
    pgpass: Optional[str]
    role_created: bool

    @classmethod
    def of(cls, name: str, rec: Dict[str, Any], section: Dict[str, Any]) -> Target:
        """From setup's record (installer/plugins/setup/_dbschema.py: host, port,
        user, role_created, pgpass), [setup.database] filling what it lacks."""
        return cls(name=name, host=str(rec.get("host") or "localhost"),
                   port=int(rec.get("port") or 5432),
                   user=str(rec.get("user") or section.get("user") or name),
                   pgpass=rec.get("pgpass") or section.get("pgpass"),
                   role_created=bool(rec.get("role_created")))

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Drop:
    """What validation decided for a database to drop."""

    target: Target
    params: Optional[ConnParams]  # None: the database is gone already
    bindir: Any
    role: Optional[str]           # its role, dropped too
    app_password: Optional[str]
    role_exists: bool


def _has_db(plugin: Any) -> bool:
    return bool(plugin.state.databases(action=_facts.SETUP))


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._drops: List[Drop] = []

    def _targets(self) -> List[Target]:
        section = _facts.summary(self).section("database")
        return [Target.of(name, rec, section) for name, rec in
                sorted(self.state.databases(action=_facts.SETUP).items())]

    @engine.event(stage=Stages.CUSTOMIZATION, name="cleanup.database.ask", condition=_has_db)
    def _ask(self) -> None:
        key = "CLEANUP/dropDatabase"
        if not self.env.answered(key):
            # engine-cleanup: asked with "no" offered; unattended, the database goes.
            self.env.set(key, bool(self.dialog.unattended), source=DEFAULT)
        self.dialog.ask(key, PROMPT)

    def _admin(self) -> bool:
        return any(self.env[k] is not None for k in ("DB/user", "DB/passwordFile",
                                                      "DB/password"))

    def _password_of(self, target: Target) -> Optional[str]:
        """The application role's password, from the .pgpass setup wrote."""
        if not target.pgpass:
            return None
        try:
            text = self.resolve(target.pgpass).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return _facts.pgpass_password(text, target.host, target.port, target.name,
                                      target.user)

    def _params(self, target: Target) -> Tuple[ConnParams, Optional[str]]:
        """(connection parameters, the application role's password or None)."""
        app_password = self._password_of(target)
        if not self._admin():
            return ConnParams(host=target.host, port=target.port, user=target.user,
                              password=app_password), app_password
        port = self.env["DB/port"] if self.env["DB/port"] is not None else target.port
        if not 0 < port < 65536:
            raise InputError(f"DB/port: {port} is not a TCP port (1-65535)")
        password = self.env["DB/password"]
        if self.env["DB/passwordFile"] is not None:
            password = read_password_file(self.env["DB/passwordFile"])
        return ConnParams(host=self.env["DB/host"] or target.host, port=port,
                          user=self.env["DB/user"] or "postgres",
                          password=password), app_password

    @engine.event(stage=Stages.VALIDATION, name="cleanup.database.plan", condition=_has_db)
    def _plan(self) -> None:
        found = _facts.summary(self)
        drop = bool(self.env["CLEANUP/dropDatabase"])
        for target in self._targets():
            if target.pgpass:
                found.handled[target.pgpass] = f"goes or stays with database {target.name}"
            if not drop:
                found.database_kept.append(target.name)
                extra = f" (and its password in {target.pgpass})" if target.pgpass else ""
                self.plan(f"keep database {target.name} on {target.where}{extra}")
                continue
            planned = self._plan_drop(target)
            self._drops.append(planned)
            if planned.params is not None:
                found.work.append(f"database {target.name}")
            if not target.pgpass:
                continue
            if planned.role or not planned.role_exists:
                line = self._pgpass_line(target)
                if line:
                    self.plan(f"remove the password line of {target.user} from "
                              f"{target.pgpass} (the file too when nothing else is in it)")
                    found.work.append(target.pgpass)
            else:
                self.plan(f"keep role {target.user} and its password in {target.pgpass}, "
                          "for the next setup (give the admin connection, DB/user and "
                          "DB/passwordFile, to drop the role too)")

    def _pgpass_line(self, target: Target) -> bool:
        """Whether the .pgpass holds setup's line for `target`."""
        try:
            text = self.resolve(target.pgpass).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return False
        return _facts.pgpass_without(text, target.host, target.port, target.name,
                                     target.user)[1] > 0

    def _plan_drop(self, target: Target) -> Drop:
        params, app_password = self._params(target)
        if not self._admin() and app_password is None:
            self.log.info("no password for role %s in %s: trying without", target.user,
                          target.pgpass)
        try:
            with Server(params) as srv:
                role_exists = srv.role_exists(target.user)
                role = None
                if (self._admin() and target.role_created and target.user != params.user
                        and role_exists):
                    role = target.user
                if not srv.exists(target.name):
                    self.dialog.note(f"database {target.name} on {target.where} does not "
                                     "exist any more: nothing to drop")
                    return Drop(target, None, None, None, app_password, role_exists)
                major = srv.major
                superuser, createdb, _ = srv.privileges()
        except InputError as exc:
            how = ("the admin connection (DB/user ...)" if self._admin() else
                   f"role {target.user} with the password from "
                   f"{target.pgpass or 'its .pgpass'}")
            raise RefusedError(f"cannot drop database {target.name}: connecting as {how} "
                               f"failed: {exc.message}",
                               hint="give the admin connection (--set DB/user=postgres --set "
                                    "DB/passwordFile=FILE), or keep the database (-d)"
                               ) from None
        bindir = _pg_dump_dir(major)
        self.plan(f"back up database {target.name} on {target.where} (pg_dump into "
                  f"{_facts.BACKUP_DIR}/) and drop it, as {params.user}"
                  + (f"; drop role {role}" if role else ""))
        if not (superuser or createdb):
            self.log.warning("%s may not create databases: should cleanup fail after the "
                             "drop, database %s has to be restored by hand from the backup",
                             params.user, target.name)
            self.plan(f"  (should cleanup fail after the drop, restore {target.name} by hand "
                      "from the backup: its owner may not create databases; give DB/user "
                      "and DB/passwordFile for an automatic restore)")
        return Drop(target, params, bindir, role, app_password, role_exists)

    @engine.event(stage=Stages.MISC, name="cleanup.database.drop", priority=engine.PRIO_LOW,
                  after=("cleanup.files.remove",),
                  condition=lambda self: not self.dry_run and _has_db(self))
    def _drop(self) -> None:
        for drop in self._drops:
            target = drop.target
            role_gone = not drop.role_exists
            if drop.params is None:  # gone already
                self.state.forget("databases", target.name, action=_facts.SETUP)
            else:
                element = DropDatabase(target.name, drop.params, drop.bindir,
                                       self.resolve(_facts.BACKUP_DIR), role=drop.role,
                                       role_password=drop.app_password)
                if not self.transaction.append(element):
                    continue
                self.state.forget("databases", target.name, action=_facts.SETUP)
                self.dialog.note(f"database {target.name} dropped; its backup: "
                                 f"{element.backup}")
                if element.role_dropped:
                    role_gone = True
                    self.dialog.note(f"role {element.role} dropped")
            if not role_gone:
                where = f" (its password stays in {target.pgpass})" if target.pgpass else ""
                self.dialog.note(f"role {target.user} kept{where}: the next setup uses it")
            if target.pgpass:
                self._pgpass(target, role_gone)

    def _pgpass(self, target: Target, role_gone: bool) -> None:
        """With its role gone, setup's .pgpass line goes (and the file, when it is
        setup's and nothing else is in it); a role that stays keeps its password
        there for the next setup, and the file is no longer setup's to remove."""
        assert target.pgpass is not None
        path = target.pgpass
        rec = self.state.files(action=_facts.SETUP).get(path)
        try:
            text = self.resolve(path).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            text = None
        if text is None or not role_gone:
            if rec is not None:
                self.state.forget("files", path, action=_facts.SETUP)
            return
        rest, removed, others = _facts.pgpass_without(text, target.host, target.port,
                                                      target.name, target.user)
        if not removed:
            if rec is not None:
                self.state.forget("files", path, action=_facts.SETUP)
        elif not others and (rec is None or rec.get("how", "created") == "created"):
            self.transaction.append(RemoveFile(path))
        else:
            self.transaction.append(PgpassRewrite(path, rest.encode("utf-8")))


def _pg_dump_dir(major: int) -> Any:
    """The bindir of a pg_dump not older than the server (RefusedError if none)."""
    dirs = pg_bindirs("pg_dump")
    with_restore = {m: d for m, d in dirs.items() if (d / "pg_restore").is_file()}
    chosen = pick_major(with_restore, major, major)
    if chosen is None:
        raise RefusedError(f"no pg_dump for the PostgreSQL {major} server is installed "
                           f"(have: {majors_found(dirs)}): the database cannot be backed up "
                           "before it is dropped", hint=f"install the PostgreSQL {major} "
                                                        "client, or keep the database (-d)")
    return dirs[chosen]
