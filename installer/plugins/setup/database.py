"""The application's database: its role and database installed when absent, its
versioned schema scripts applied in order, upgraded (after a pg_dump backup that a
rollback restores) when the installed package brings new scripts; the role's
password in a .pgpass file and, encrypted with the PKI's certificate, in the
application's database config.

    [setup.database]
    name = "engine"                             # the database (SETUP_DB/database)
    user = "engine"                             # its owner role (SETUP_DB/user)
    scripts = "/usr/share/engine/dbscripts"     # NNNN_description.sql, from a package
    config = "/etc/engine/engine.conf.d/10-setup-database.conf"
    pgpass = "/root/.pgpass"
    version_table = "schema_version"            # optional
    cert = "engine"                             # optional: the [setup.pki] certificate
                                                # that encrypts the password (default:
                                                # the app's name)

Scripts are plain SQL (no psql meta-commands, no BEGIN/COMMIT of their own, nothing
that cannot run inside a transaction block), run as the role, all pending ones in
one transaction, each recorded in the version table (version, script, sha256,
applied_at). Pending: a number above the highest applied. A database at a version
newer than the newest script is refused (no downgrade). An applied script whose
file changed since is a warning, not an error (packages may reword comments; it is
never applied again).

The admin connection (DB/*) is used only when needed: to create the role or the
database, to set a new password, and to upgrade (the backup, and its restore on
rollback, needs a superuser). A re-run that finds the database current, with the
role's password (SETUP_DB/password, else the one setup wrote into the .pgpass)
accepted, does not connect as the admin at all, so it needs no admin password.

The config (`<APP>_DB_HOST`, `_PORT`, `_DATABASE`, `_USER`,
`_PASSWORD_ENCRYPTED`, mode 0640) never holds the clear password: it is
encrypted with `openssl pkeyutl -encrypt -certin` (RSA-OAEP) with the
certificate, base64. A re-run keeps the existing ciphertext while it still
decrypts (with the PKI's key) to the same password, so nothing changes. The
.pgpass (0600, root) keeps its other lines; its sha256 is not recorded.

Answer keys:

  DB/host=str:localhost      server host name, address or unix socket directory
  DB/port=int:5432           server port (1-65535)
  DB/user=str:postgres       admin role: a superuser (upgrades need one), or one
                             that may create databases and roles
  DB/passwordFile=path:FILE  file whose first line is the admin password (optional)
  DB/password=str:SECRET     the admin password (secret, optional; asked, hidden,
                             when the admin is needed and the run is interactive)
  SETUP_DB/database=str:NAME the application's database (default: the section's name)
  SETUP_DB/user=str:NAME     its owner role (default: the section's user)
  SETUP_DB/password=str:SECRET  the role's password (secret; printable ASCII, at most
                             190 characters): generated for a new role, else read
                             back from the .pgpass; an answer that the existing role
                             does not accept is set as its new password
  SETUP_DB/upgrade=bool:true apply pending schema scripts to an existing database

Validation, before any change: the answers' types and ranges, [setup.pki] present,
the scripts well-formed, the server reachable and the credentials accepted, the
admin's privileges, a pg_dump for the backup; the plan says install, upgrade from
version X to Y (the scripts), or up to date.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from typing import Any, Dict, List, Optional

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT
from installer.errors import InputError, RefusedError, SatchelError
from installer.plugins.hooks._elements import unchanged
from installer.plugins.importer import database as importer_db
from installer.plugins.setup import _config, pki
from installer.plugins.setup._dbschema import (
    DB_NAME,
    DbPlan,
    SchemaChange,
    SchemaState,
    auth_failed,
    dump_tools,
    inspect,
    password_problem,
    pgpass_lookup,
    pgpass_update,
    read_scripts,
)
from installer.restore.database import ConnParams, Server, read_password_file

SECTION = "database"
CERT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONFIG_MODE = 0o640

KEYS = (
    *(k for k in importer_db.KEYS if k.name.startswith("DB/")),
    engine.Key("SETUP_DB/database", str, default=None,
               doc="the application's database (default: [setup.database] name)"),
    engine.Key("SETUP_DB/user", str, default=None,
               doc="the application's database role (default: [setup.database] user)"),
    engine.Key("SETUP_DB/password", str, secret=True, default=None,
               doc="the application role's password (generated for a new role, else "
                   "read back from the .pgpass)"),
    engine.Key("SETUP_DB/upgrade", bool, default=True,
               doc="apply pending schema scripts to an existing database"),
)


def check_section(table: Any) -> List[str]:
    problems = _config.check_table(table, {
        "name": (str, True), "user": (str, True), "scripts": (str, True),
        "config": (str, True), "pgpass": (str, True), "version_table": (str, False),
        "cert": (str, False)})
    for key in ("scripts", "config", "pgpass"):
        if isinstance(table.get(key), str):
            problem = _config.absolute(table[key])
            if problem:
                problems.append(f"{key}: {problem}")
    for key in ("name", "user", "version_table"):
        value = table.get(key)
        if isinstance(value, str) and not DB_NAME.match(value):
            problems.append(f"{key}: {value!r} is not a name (letters, digits, '_', '$', "
                            "'-'; starting with a letter or '_'; at most 63)")
    cert = table.get("cert")
    if isinstance(cert, str) and not CERT_NAME.match(cert):
        problems.append(f"cert: {cert!r} is not a certificate name")
    return problems


def _configured(plugin: Any) -> bool:
    return _config.configured(plugin, SECTION)


def _shared(plugin: Any) -> Optional[DbPlan]:
    return getattr(plugin._context, "_setup_database", None)


def app_params(plugin: Any) -> ConnParams:
    """The application role's connection (for options.py), once this plugin's
    validation ran: host and port of DB/*, the role and its password."""
    plan = _shared(plugin)
    if plan is None:
        raise InputError("the application's database connection is not known: "
                         "[setup.database] is required")
    return plan.app


def schema_stays(plugin: Any) -> bool:
    """True when this run leaves the database's schema as it is (up to date, or
    an upgrade held back): what is read there at validation is what MISC sees."""
    plan = _shared(plugin)
    return plan is not None and plan.action in ("current", "held")


def app_database(plugin: Any) -> str:
    """The application's database name (with app_params)."""
    plan = _shared(plugin)
    if plan is None:
        raise InputError("[setup.database] is required")
    return plan.database


class Plugin(engine.PluginBase):
    KEYS = KEYS

    # -- answers ---------------------------------------------------------------------
    def _section(self) -> Dict[str, Any]:
        return _config.load(self).section(SECTION)

    def _cert_name(self) -> str:
        cfg = _config.load(self)
        return str(cfg.section(SECTION).get("cert") or cfg.app)

    def _admin_params(self) -> ConnParams:
        password: Optional[str] = None
        passfile = self.env["DB/passwordFile"]
        if passfile is not None:
            password = read_password_file(passfile)
        elif self.env["DB/password"]:
            password = self.env["DB/password"]
        return ConnParams(host=self.env["DB/host"], port=self.env["DB/port"],
                          user=self.env["DB/user"], password=password)

    def _app(self, password: Optional[str]) -> ConnParams:
        return ConnParams(host=self.env["DB/host"], port=self.env["DB/port"],
                          user=self.env["SETUP_DB/user"], password=password)

    def _stored_password(self) -> Optional[str]:
        data = _config.read_target(self, self._section()["pgpass"])
        text = data.decode("utf-8", "replace") if data is not None else None
        return pgpass_lookup(text, self.env["DB/host"], self.env["DB/port"],
                             self.env["SETUP_DB/database"], self.env["SETUP_DB/user"])

    def _candidate(self) -> Optional[str]:
        if self.env.answered("SETUP_DB/password") and self.env["SETUP_DB/password"]:
            return str(self.env["SETUP_DB/password"])
        return self._stored_password()

    @engine.event(stage=Stages.SETUP, name="setup.database.defaults",
                  after=("setup.config",), condition=_configured)
    def _defaults(self) -> None:
        section = self._section()
        for key, field in (("SETUP_DB/database", "name"), ("SETUP_DB/user", "user")):
            if self.env[key] is None:
                self.env.set(key, section[field], source=DEFAULT)

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.database.ask",
                  condition=_configured)
    def _ask(self) -> None:
        self.dialog.ask("DB/host", "PostgreSQL server host")
        self.dialog.ask("DB/port", "PostgreSQL server port")
        self.dialog.ask("DB/user", "PostgreSQL admin user")
        self.dialog.ask("SETUP_DB/database", "The application's database")
        self.dialog.ask("SETUP_DB/user", "The application's database user")
        if (not self.dialog.unattended and self.env["DB/passwordFile"] is None
                and not self.env.answered("DB/password") and self._admin_maybe_needed()):
            self.dialog.ask("DB/password",
                            f"Password of PostgreSQL admin user {self.env['DB/user']}")

    def _admin_maybe_needed(self) -> bool:
        """False when the role's password works and the database is current."""
        try:
            self._check_answers()
            candidate = self._candidate()
            if candidate is None:
                return True
            plan = self._probe_app(candidate, self._scripts())
            return plan is None or plan.admin is not None or plan.changes_db
        except SatchelError:
            return True

    # -- validation ------------------------------------------------------------------
    def _check_answers(self) -> None:
        env = self.env
        problems = []
        port = env["DB/port"]
        if not 0 < port < 65536:
            problems.append(f"DB/port: {port} is not a TCP port (1-65535)")
        if not _host_ok(env["DB/host"]):
            problems.append(f"DB/host: {env['DB/host']!r} is not a host name, address "
                            "or socket directory")
        if not env["DB/user"]:
            problems.append("DB/user: empty")
        for key in ("SETUP_DB/database", "SETUP_DB/user"):
            if not DB_NAME.match(env[key] or ""):
                problems.append(f"{key}: {env[key]!r} is not a name (letters, digits, '_', "
                                "'$', '-'; starting with a letter or '_'; at most 63)")
        if env.answered("SETUP_DB/password") and env["SETUP_DB/password"] is not None:
            problem = password_problem(env["SETUP_DB/password"])
            if problem:
                problems.append(f"SETUP_DB/password: {problem}")
        if problems:
            raise InputError("; ".join(problems),
                             hint="fix the values (--set KEY=VALUE or the answer file)")

    def _scripts(self) -> Any:
        target = self._section()["scripts"]
        return read_scripts(self.resolve(target), target)

    @engine.event(stage=Stages.VALIDATION, name="setup.database.plan", condition=_configured)
    def _validate(self) -> None:
        cfg = _config.load(self)
        if not cfg.has("pki"):
            raise InputError("the database password is stored encrypted with the PKI's "
                             "certificate: [setup.pki] is required",
                             hint="add a [setup.pki] section to the recipe's [setup]")
        cert = self._cert_name()
        certs = cfg.section("pki").get("certs") or []
        if isinstance(certs, list) and certs and cert not in certs:
            raise InputError(f"[setup.database] cert: {cert!r} is not one of [setup.pki] "
                             f"certs ({', '.join(map(str, certs))})")
        self._check_answers()
        scripts = self._scripts()
        candidate = self._candidate()
        plan = self._probe_app(candidate, scripts) if candidate else None
        if plan is not None and plan.changes_db:
            try:
                plan = self._probe_admin(candidate, scripts)
            except InputError as exc:  # the role got in: say why the admin is needed
                raise InputError(f"database {plan.database}: the upgrade from version "
                                 f"{plan.state.version} to {plan.pending[-1].version} needs "
                                 f"the admin connection (DB/*): {exc.message}",
                                 hint=exc.hint) from None
        elif plan is None:
            plan = self._probe_admin(candidate, scripts)
        self._check_versions(plan)
        context: Any = self._context
        context._setup_database = plan  # for app_params() and schema_stays()
        self._plan_lines(plan)

    def _new_plan(self, password: Optional[str], scripts: Any) -> DbPlan:
        section = self._section()
        return DbPlan(database=self.env["SETUP_DB/database"], user=self.env["SETUP_DB/user"],
                      app=self._app(password), scripts=list(scripts),
                      version_table=section.get("version_table", "schema_version"),
                      backup_dir=self.resolve(_config.BACKUP_DIR),
                      backup_target_dir=_config.BACKUP_DIR)

    def _decide(self, plan: DbPlan, state: SchemaState, exists: bool) -> None:
        plan.state = state
        if not exists or (not state.table_exists and state.empty):
            plan.action = "install"
            plan.pending = list(plan.scripts)
            return
        if not state.table_exists:
            raise RefusedError(f"database {plan.database} exists and is not empty, but has no "
                               f"{plan.version_table} table: it was not installed by setup",
                               hint="give another SETUP_DB/database, or drop that database")
        plan.pending = [s for s in plan.scripts if s.version > state.version]
        if not plan.pending:
            plan.action = "current"
        else:
            plan.action = "upgrade" if self.env["SETUP_DB/upgrade"] else "held"

    def _probe_app(self, password: str, scripts: Any) -> Optional[DbPlan]:
        """The plan as seen by the role itself; None when it cannot connect."""
        plan = self._new_plan(password, scripts)
        try:
            state = inspect(plan.app, plan.database, plan.version_table)
        except InputError:
            return None
        self._decide(plan, state, True)
        return plan

    def _probe_admin(self, candidate: Optional[str], scripts: Any) -> DbPlan:
        admin = self._admin_params()
        with Server(admin) as srv:
            superuser, createdb, createrole = srv.privileges()
            role_exists = srv.role_exists(self.env["SETUP_DB/user"])
            rows = srv.query("SELECT pg_catalog.pg_get_userbyid(datdba) FROM "
                             "pg_catalog.pg_database WHERE datname = %s",
                             (self.env["SETUP_DB/database"],))
            owner = rows[0][0] if rows else None
            major = srv.major
        user, db = self.env["SETUP_DB/user"], self.env["SETUP_DB/database"]
        if owner is not None and owner != user:
            raise RefusedError(f"database {db} exists and is owned by {owner}, not {user}",
                               hint="give SETUP_DB/database and SETUP_DB/user of the "
                                    "application's own database")
        password = candidate
        change = False
        if role_exists:
            answered = self.env.answered("SETUP_DB/password")
            if candidate is None:
                raise InputError(f"SETUP_DB/password: role {user} exists and setup has no "
                                 "password for it",
                                 hint="give its password, or a new one to set, as "
                                      "SETUP_DB/password")
            if not self._login_works(self._app(candidate), db if owner else None):
                if not answered:
                    raise InputError(f"SETUP_DB/password: the password of role {user} in "
                                     f"{self._section()['pgpass']} is refused by the server",
                                     hint="give its password, or a new one to set, as "
                                          "SETUP_DB/password")
                change = True
        elif password is None or not self.env.answered("SETUP_DB/password"):
            password = secrets.token_urlsafe(32)
        plan = self._new_plan(password, scripts)
        plan.admin = admin
        plan.create_role = not role_exists
        plan.create_db = owner is None
        plan.change_password = change
        if owner is not None:
            state = inspect(admin if change else plan.app, db, plan.version_table)
            self._decide(plan, state, True)
        else:
            self._decide(plan, SchemaState(), False)
        if (plan.create_role or change) and not (superuser or createrole):
            raise RefusedError(f"database: {admin.user} may not create roles or set "
                               "passwords", hint="connect as a superuser (DB/user)")
        if change and not superuser:
            raise RefusedError(f"database: setting a new password for role {user} needs a "
                               "superuser (the old one is kept for a rollback)",
                               hint="connect as a superuser (DB/user)")
        if plan.create_db and not (superuser or createdb):
            raise RefusedError(f"database: {admin.user} may not create databases",
                               hint="connect as a superuser (DB/user)")
        if plan.pending and plan.action in ("install", "upgrade") and not plan.create_db:
            if not superuser:
                raise RefusedError(f"database {db}: the upgrade's backup and its restore on "
                                   f"rollback need a superuser, {admin.user} is not one",
                                   hint="connect as a superuser (DB/user)")
            plan.tools = dump_tools(major)
        if not plan.changes_db:
            plan.admin = None
        return plan

    def _login_works(self, params: ConnParams, db: Optional[str]) -> bool:
        try:
            if db is not None:
                params.connect(db).close()
            else:
                Server(params).close()
        except InputError as exc:
            if auth_failed(exc) or "does not exist" in exc.message:
                return False
            raise
        return True

    def _check_versions(self, plan: DbPlan) -> None:
        files = {s.version: s for s in plan.scripts}
        newest = max(files)
        if plan.state.version > newest:
            raise RefusedError(f"database {plan.database} is at schema version "
                               f"{plan.state.version}, newer than the installed scripts "
                               f"({newest}): a downgrade is not supported",
                               hint="install the application's package of that version")
        changed = [files[v].name for v, (_, sha) in sorted(plan.state.applied.items())
                   if v in files and files[v].sha256 != sha]
        if changed:
            self.log.warning("database %s: applied script(s) changed since: %s (not applied "
                             "again)", plan.database, ", ".join(changed))
            self.dialog.note(f"warning: schema script(s) changed since they were applied: "
                             f"{', '.join(changed)} (not applied again)")
        gaps = [s.name for s in plan.scripts
                if s.version < plan.state.version and s.version not in plan.state.applied]
        if gaps:
            self.log.warning("database %s: never applied, older than its version: %s",
                             plan.database, ", ".join(gaps))

    def _plan_lines(self, plan: DbPlan) -> None:
        where = f"{plan.app.host}:{plan.app.port}"
        names = ", ".join(s.name for s in plan.pending)
        if plan.create_role:
            self.plan(f"database: create role {plan.user} (password generated unless given)")
        elif plan.change_password:
            self.plan(f"database: set a new password for role {plan.user}")
        if plan.action == "install":
            how = "create database" if plan.create_db else "install into the empty database"
            self.plan(f"database: {how} {plan.database} on {where}, schema version "
                      f"{plan.pending[-1].version} ({names})")
        elif plan.action == "upgrade":
            self.plan(f"database: upgrade {plan.database} from version {plan.state.version} "
                      f"to {plan.pending[-1].version} ({names}), after a backup to "
                      f"{_config.BACKUP_DIR}")
        elif plan.action == "held":
            self.plan(f"database: {plan.database} is at version {plan.state.version}; "
                      f"{names} not applied (SETUP_DB/upgrade=false)")
        else:
            self.plan(f"database: {plan.database} is up to date (version "
                      f"{plan.state.version})")
        section = self._section()
        self.plan(f"database: the password of {plan.user} in {section['pgpass']} and, "
                  f"encrypted, in {section['config']} (each only if it changed)")

    # -- the changes -----------------------------------------------------------------
    @engine.event(stage=Stages.MISC, name="setup.database.schema",
                  condition=lambda self: not self.dry_run and _configured(self))
    def _schema(self) -> None:
        plan = _shared(self)
        assert plan is not None
        if not plan.changes_db:
            self.log.info("database %s: up to date, nothing to change", plan.database)
            return
        section = self._section()
        previous = self.state.databases("setup").get(plan.database, {})
        previous.update({"pgpass": section["pgpass"], "config": section["config"]})
        element = SchemaChange(plan, previous)
        self.transaction.append(element)
        if element.backup_target:
            self.dialog.note(f"database {plan.database}: backup before the upgrade: "
                             f"{element.backup_target}")

    @engine.event(stage=Stages.MISC, name="setup.database.config",
                  after=("setup.pki.create", "setup.database.schema"),
                  condition=lambda self: not self.dry_run and _configured(self))
    def _files(self) -> None:
        plan = _shared(self)
        assert plan is not None and plan.app.password is not None
        password = plan.app.password
        section = self._section()
        pgpass = section["pgpass"]
        old = _config.read_target(self, pgpass)
        data = pgpass_update(old.decode("utf-8", "replace") if old is not None else None,
                             plan.app.host, plan.app.port, plan.database, plan.user, password)
        if not unchanged(self, pgpass, data, 0o600, "root", "root"):
            self.transaction.append(engine.SecretFileWrite(pgpass, data, mode=0o600, owner="root",
                                                    group="root"))
        config = section["config"]
        text = self._config_text(plan, self._ciphertext(config, password))
        if not unchanged(self, config, text, CONFIG_MODE, "root", "root"):
            self.transaction.append(engine.FileWrite(config, text, mode=CONFIG_MODE,
                                                     owner="root", group="root"))

    def _prefix(self) -> str:
        return re.sub(r"[^A-Z0-9]", "_", _config.load(self).app.upper()) + "_DB_"

    def _config_text(self, plan: DbPlan, ciphertext: str) -> bytes:
        prefix = self._prefix()
        cert = pki.cert_path(_config.load(self), self._cert_name())
        values = (("HOST", plan.app.host), ("PORT", str(plan.app.port)),
                  ("DATABASE", plan.database), ("USER", plan.user),
                  ("PASSWORD_ENCRYPTED", ciphertext))
        lines = ["# Written by `install setup` ([setup.database]): the application's "
                 "database.",
                 f"# The password is encrypted with the public key of {cert}",
                 "# (RSA-OAEP, base64): decrypt it with that certificate's private key."]
        lines += [f'{prefix}{k}="{_quote(v)}"' for k, v in values]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _ciphertext(self, config: str, password: str) -> str:
        """The existing ciphertext when it still decrypts to `password` (encryption
        is randomized: a new one would change the file for nothing), else a new one."""
        cfg = _config.load(self)
        cert = self.resolve(pki.cert_path(cfg, self._cert_name()))
        if not cert.is_file():
            raise SatchelError(f"database: the certificate {pki.cert_path(cfg, self._cert_name())}"
                               " is missing", hint="check [setup.pki] certs")
        old = _config.read_target(self, config)
        m = re.search(r'^' + re.escape(self._prefix()) + r'PASSWORD_ENCRYPTED="([A-Za-z0-9+/=]+)"',
                      (old or b"").decode("utf-8", "replace"), re.M)
        key = self.resolve(pki.key_path(cfg, self._cert_name()))
        if m and key.is_file():
            proc = self.run(["openssl", "pkeyutl", "-decrypt", "-inkey", key,
                             "-pkeyopt", "rsa_padding_mode:oaep"],
                            input=base64.b64decode(m.group(1)), check=False)
            if proc.returncode == 0 and proc.stdout == password.encode():
                return m.group(1)
        proc = self.run(["openssl", "pkeyutl", "-encrypt", "-certin", "-inkey", cert,
                         "-pkeyopt", "rsa_padding_mode:oaep"], input=password.encode())
        return base64.b64encode(proc.stdout).decode()


def _host_ok(host: Optional[str]) -> bool:
    if not host or any(c.isspace() for c in host):
        return False
    if host.startswith("/"):
        return _config.absolute(host) is None
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_config.HOST_NAME.match(host))


def _quote(value: str) -> str:
    return re.sub(r'(["\\$`])', r"\\\1", value)
