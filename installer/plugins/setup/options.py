"""Application options in the application's database: the application mode, the
recipe's key-value options, and the default data center's storage type, set
idempotently (only rows whose value differs are written; a re-run with the same
answers writes nothing) as the application's role, in one transaction whose undo
puts the previous values back (and deletes the option rows it added).

    [setup.options]
    table = "vdc_options"                 # the options table
    name_column = "option_name"
    value_column = "option_value"
    values = { SSLEnabled = "true", MaxVdsMemOverCommit = "200" }
    # optional, with their defaults:
    mode_option = "ApplicationMode"       # the option that holds SETUP/applicationMode
    datacenter_table = "storage_pool"     # where SETUP/storageType goes:
    datacenter_name_column = "name"       #   UPDATE <table> SET <type column> = ...
    datacenter_type_column = "storage_type"   #   WHERE <name column> = <name>
    datacenter_name = "Default"

Tables may be schema-qualified ("engine.vdc_options"). Missing option rows are
inserted; a missing data center is a warning (nothing to set). Runs after the
database is installed or upgraded (setup.database.schema); needs [setup.database].

Answer keys:

  SETUP/applicationMode=str:both  both, virt or gluster
  SETUP/storageType=str:nfs       the default data center's storage type: nfs, fc,
                                  iscsi, posixfs, glusterfs or localfs
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.errors import InputError, SatchelError
from installer.plugins.setup import _config, database
from installer.restore.database import ConnParams, load_psycopg2

SECTION = "options"
MODES = ("both", "virt", "gluster")
STORAGE_TYPES = ("nfs", "fc", "iscsi", "posixfs", "glusterfs", "localfs")
IDENT = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
TABLE = re.compile(rf"^({IDENT}\.)?{IDENT}$")
COLUMN = re.compile(rf"^{IDENT}$")
DEFAULTS = {"mode_option": "ApplicationMode", "datacenter_table": "storage_pool",
            "datacenter_name_column": "name", "datacenter_type_column": "storage_type",
            "datacenter_name": "Default"}

KEYS = (
    engine.Key("SETUP/applicationMode", str, default="both", choices=MODES,
               doc="application mode: both, virt or gluster"),
    engine.Key("SETUP/storageType", str, default="nfs", choices=STORAGE_TYPES,
               doc="storage type of the default data center: nfs, fc, iscsi, posixfs, "
                   "glusterfs or localfs"),
)

# (what, key, old value or None when absent, new value)
Change = Tuple[str, str, Optional[str], str]


def check_section(table: Any) -> List[str]:
    problems = _config.check_table(table, {
        "table": (str, True), "name_column": (str, True), "value_column": (str, True),
        "values": (dict, False), **{k: (str, False) for k in DEFAULTS}})
    for key in ("table", "datacenter_table"):
        value = table.get(key)
        if isinstance(value, str) and not TABLE.match(value):
            problems.append(f"{key}: {value!r} is not a table name ([schema.]name)")
    for key in ("name_column", "value_column", "datacenter_name_column",
                "datacenter_type_column"):
        value = table.get(key)
        if isinstance(value, str) and not COLUMN.match(value):
            problems.append(f"{key}: {value!r} is not a column name")
    values = table.get("values")
    if isinstance(values, dict):
        mode = table.get("mode_option", DEFAULTS["mode_option"])
        for name, value in sorted(values.items()):
            if not isinstance(value, str):
                problems.append(f"values.{name}: expected a string, got "
                                f"{type(value).__name__}")
            if name == mode:
                problems.append(f"values.{name}: set by the answer SETUP/applicationMode")
            if not name or "\0" in name or "\0" in str(value):
                problems.append(f"values.{name}: not an option name and value")
    return problems


def _configured(plugin: Any) -> bool:
    return _config.configured(plugin, SECTION)


def _ident(name: str) -> Any:
    return load_psycopg2().sql.Identifier(*name.split("."))


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def _section(self) -> Dict[str, Any]:
        return dict(DEFAULTS, **_config.load(self).section(SECTION))

    def _wanted(self) -> Dict[str, str]:
        section = self._section()
        out = {section["mode_option"]: self.env["SETUP/applicationMode"]}
        out.update({str(k): str(v) for k, v in (section.get("values") or {}).items()})
        return out

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.options.ask", condition=_configured)
    def _ask(self) -> None:
        self.dialog.ask("SETUP/applicationMode", "Application mode (both, virt, gluster)")
        self.dialog.ask("SETUP/storageType",
                        "Default data center storage type (nfs, fc, iscsi, posixfs, "
                        "glusterfs, localfs)")

    @engine.event(stage=Stages.VALIDATION, name="setup.options.plan",
                  after=("setup.database.plan",), condition=_configured)
    def _validate(self) -> None:
        if not _config.load(self).has("database"):
            raise InputError("[setup.options] needs [setup.database]: the options are set "
                             "in the application's database")
        for key, allowed in (("SETUP/applicationMode", MODES),
                             ("SETUP/storageType", STORAGE_TYPES)):
            if self.env[key] not in allowed:
                raise InputError(f"{key}: {self.env[key]!r} is not one of "
                                 f"{', '.join(allowed)}")
        section = self._section()
        db = database.app_database(self)
        if database.schema_stays(self):
            changes = self._changes(warn=False)  # the schema stays: the exact plan
            for what, key, old, new in changes:
                self.plan(f"options: {what} {key}: {old!r} -> {new!r}")
            if not changes:
                self.plan(f"options: in {db}.{section['table']}, nothing to change")
            return
        wanted = ", ".join(f"{k}={v}" for k, v in self._wanted().items())
        self.plan(f"options: {wanted} in {db}.{section['table']}; data center "
                  f"{section['datacenter_name']}: storage type {self.env['SETUP/storageType']}"
                  " (only values that differ are written)")

    # -- reading and writing ---------------------------------------------------------
    def _connect(self) -> Tuple[ConnParams, Any]:
        params = database.app_params(self)
        return params, params.connect(database.app_database(self), autocommit=False)

    def _changes(self, warn: bool = True) -> List[Change]:
        """What differs from the answers and the recipe, read as the role."""
        section = self._section()
        sql = load_psycopg2().sql
        wanted = self._wanted()
        params, conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT {}, {} FROM {} WHERE {} = ANY (%s)").format(
                    _ident(section["name_column"]), _ident(section["value_column"]),
                    _ident(section["table"]), _ident(section["name_column"])),
                    (list(wanted),))
                have: Dict[str, Optional[str]] = {r[0]: r[1] for r in cur.fetchall()}
                cur.execute(sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
                    _ident(section["datacenter_type_column"]),
                    _ident(section["datacenter_table"]),
                    _ident(section["datacenter_name_column"])), (section["datacenter_name"],))
                dc = cur.fetchall()
        except load_psycopg2().Error as exc:
            raise SatchelError(f"options: cannot read them in {database.app_database(self)}: "
                               f"{params.scrub(str(exc))}",
                               hint="check [setup.options] against the database schema") \
                from None
        finally:
            conn.rollback()
            conn.close()
        changes: List[Change] = []
        for key, value in wanted.items():
            old = have.get(key)
            if key not in have:
                changes.append(("add option", key, None, value))
            elif old != value:
                changes.append(("set option", key, old, value))
        storage = self.env["SETUP/storageType"]
        if not dc:
            if warn:
                self.log.warning("options: no data center %r in %s: storage type not set",
                                 section["datacenter_name"], section["datacenter_table"])
                self.dialog.note(f"warning: no data center {section['datacenter_name']!r}: "
                                 "its storage type was not set")
        elif dc[0][0] != storage:
            changes.append(("set the storage type of data center", section["datacenter_name"],
                            dc[0][0], storage))
        return changes

    def _write(self, changes: List[Change], undo: bool) -> None:
        section = self._section()
        sql = load_psycopg2().sql
        table, name_col = _ident(section["table"]), _ident(section["name_column"])
        value_col = _ident(section["value_column"])
        params, conn = self._connect()
        try:
            with conn.cursor() as cur:
                for what, key, old, new in changes:
                    if what.startswith("set the storage type"):
                        cur.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(
                            _ident(section["datacenter_table"]),
                            _ident(section["datacenter_type_column"]),
                            _ident(section["datacenter_name_column"])),
                            (old if undo else new, key))
                    elif old is None and undo:
                        cur.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                            table, name_col), (key,))
                    elif old is None:
                        cur.execute(sql.SQL("INSERT INTO {} ({}, {}) VALUES (%s, %s)").format(
                            table, name_col, value_col), (key, new))
                    else:
                        cur.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(
                            table, value_col, name_col), (old if undo else new, key))
            conn.commit()
        except load_psycopg2().Error as exc:
            conn.rollback()
            raise SatchelError(f"options: cannot write them in {database.app_database(self)}: "
                               f"{params.scrub(str(exc))}") from None
        finally:
            conn.close()

    @engine.event(stage=Stages.MISC, name="setup.options.set", after=("setup.database.schema",),
                  condition=lambda self: not self.dry_run and _configured(self))
    def _set(self) -> None:
        changes = self._changes()
        if not changes:
            self.log.info("options: nothing to change")
            return
        for what, key, old, new in changes:
            self.log.info("options: %s %s: %r -> %r", what, key, old, new)
        self.transaction.append(engine.CallbackElement(
            f"set {len(changes)} option(s) in {database.app_database(self)}",
            do=lambda: self._write(changes, undo=False),
            undo=lambda: self._write(changes, undo=True)))
