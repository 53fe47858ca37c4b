"""Tuning of a local PostgreSQL: the recipe's settings in its postgresql.conf (inside
the root), then a restart — only when the database is local (DB/host is
localhost, 127.0.0.1, ::1 or a unix socket directory). A remote database is left
alone, with a note.

    [setup.postgresql]
    conf = "/var/lib/pgsql/data/postgresql.conf"
    settings = { max_connections = 150 }      # name -> integer or string
    service = "postgresql.service"

Each setting's active line is replaced in place (comments and other lines kept), a
missing one appended; strings are written quoted. max_connections is only ever
raised, never lowered below the file's current value (as engine-setup does). A
conf file that is not there (PostgreSQL not initialized yet) is a note, not an
error; settings that postgresql.auto.conf (ALTER SYSTEM) overrides are warned
about. The file is written only when a value differs.

`systemctl restart <service>` runs only when the root is / and systemd runs there
(and again on rollback, after the file is put back); otherwise a note says to
restart PostgreSQL to apply.

Answer keys:

  SETUP_PG/tune=bool:true    tune the local PostgreSQL
  SETUP_PG/conf=path:FILE    its postgresql.conf (default: [setup.postgresql] conf)
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple, Union

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT
from installer.errors import InputError
from installer.plugins.hooks._elements import unchanged
from installer.plugins.setup import _config

SECTION = "postgresql"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
RAISE_ONLY = ("max_connections",)
SETTING = re.compile(r"^[a-z_][a-z0-9_.]{0,62}$")
UNIT = re.compile(r"^[A-Za-z0-9@:._-]+\.service$")

KEYS = (
    engine.Key("SETUP_PG/tune", bool, default=True,
               doc="tune the local PostgreSQL ([setup.postgresql] settings)"),
    engine.Key("SETUP_PG/conf", "path", default=None,
               doc="postgresql.conf of the local PostgreSQL (default: [setup.postgresql] "
                   "conf)"),
)

Value = Union[int, str]


def check_section(table: Any) -> List[str]:
    problems = _config.check_table(table, {"conf": (str, True), "settings": (dict, True),
                                           "service": (str, True)})
    if isinstance(table.get("conf"), str):
        problem = _config.absolute(table["conf"])
        if problem:
            problems.append(f"conf: {problem}")
    service = table.get("service")
    if isinstance(service, str) and not UNIT.match(service):
        problems.append(f"service: {service!r} is not a systemd service unit name")
    settings = table.get("settings")
    if isinstance(settings, dict):
        for name, value in sorted(settings.items()):
            if not SETTING.match(name):
                problems.append(f"settings.{name}: not a PostgreSQL setting name")
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                problems.append(f"settings.{name}: expected an integer or a string")
            elif isinstance(value, str) and ("\n" in value or "\0" in value):
                problems.append(f"settings.{name}: a value on one line")
            elif name in RAISE_ONLY and not isinstance(value, int):
                problems.append(f"settings.{name}: expected an integer")
    return problems


def _configured(plugin: Any) -> bool:
    return _config.configured(plugin, SECTION)


def is_local(host: Optional[str]) -> bool:
    return host is None or host in LOCAL_HOSTS or host.startswith("/")


def current_values(text: str) -> Dict[str, str]:
    """The active value of each setting of a postgresql.conf (the last line wins),
    quotes and trailing comments removed."""
    out: Dict[str, str] = {}
    rx = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^']|'')*'|[^#\s]*)")
    for line in text.splitlines():
        m = rx.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        value = m.group(2)
        if value.startswith("'") and value.endswith("'") and len(value) >= 2:
            value = value[1:-1].replace("''", "'")
        out[m.group(1).lower()] = value
    return out


def render(value: Value) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._new: Optional[bytes] = None
        self._set: List[Tuple[str, str]] = []

    def _section(self) -> Dict[str, Any]:
        return _config.load(self).section(SECTION)

    @engine.event(stage=Stages.SETUP, name="setup.pgtune.defaults", after=("setup.config",),
                  condition=_configured)
    def _defaults(self) -> None:
        if self.env["SETUP_PG/conf"] is None:
            self.env.set("SETUP_PG/conf", self._section()["conf"], source=DEFAULT)

    @engine.event(stage=Stages.VALIDATION, name="setup.pgtune.plan", condition=_configured)
    def _validate(self) -> None:
        conf = str(self.env["SETUP_PG/conf"])
        problem = _config.absolute(conf)
        if problem:
            raise InputError(f"SETUP_PG/conf: {problem}")
        if self.resolve(conf).is_dir():
            raise InputError(f"SETUP_PG/conf: {conf} is a directory",
                             hint="give the path of postgresql.conf itself")
        self._new, self._set = None, []
        if not self.env["SETUP_PG/tune"]:
            self.plan("PostgreSQL tuning: off (SETUP_PG/tune=false)")
            return
        host = self.env.get("DB/host") if "DB/host" in self.env else None
        if not is_local(host):
            self.plan(f"PostgreSQL tuning: none, the database is on {host}")
            self.dialog.note(f"the database is on {host}, not local: tune its PostgreSQL "
                             f"there ({self._wanted_text()})")
            return
        data = _config.read_target(self, conf)
        if data is None:
            self.plan(f"PostgreSQL tuning: none, {conf} is not there")
            self.dialog.note(f"{conf} is not there (PostgreSQL not initialized?): set "
                             f"{self._wanted_text()} yourself")
            return
        text = data.decode("utf-8", "surrogateescape")
        self._set = self._settings(current_values(text))
        self._auto_conf(conf)
        if not self._set:
            self.plan(f"PostgreSQL tuning: {conf} already has {self._wanted_text()}")
            return
        new = _config.set_assignments(text, self._set).encode("utf-8", "surrogateescape")
        self._new = new
        what = ", ".join(f"{k} = {v}" for k, v in self._set)
        self.plan(f"PostgreSQL tuning: set {what} in {conf}, then "
                  + (f"restart {self._section()['service']}" if self._can_restart()
                     else "note that PostgreSQL needs a restart"))

    def _wanted_text(self) -> str:
        return ", ".join(f"{k} = {render(v)}"
                         for k, v in sorted(self._section()["settings"].items()))

    def _settings(self, have: Dict[str, str]) -> List[Tuple[str, str]]:
        out = []
        for name, value in sorted(self._section()["settings"].items()):
            old = have.get(name.lower())
            if name in RAISE_ONLY and old is not None and old.isdigit() \
                    and int(old) >= int(value):
                if int(old) > int(value):
                    self.log.info("PostgreSQL: %s = %s kept (not lowered to %s)", name, old,
                                  value)
                continue
            if old is not None and old == str(value):
                continue
            out.append((name, render(value)))
        return out

    def _auto_conf(self, conf: str) -> None:
        auto = conf.rsplit("/", 1)[0] + "/postgresql.auto.conf"
        data = _config.read_target(self, auto)
        if data is None:
            return
        overridden = sorted(set(current_values(data.decode("utf-8", "replace")))
                            & {k.lower() for k in self._section()["settings"]})
        if overridden:
            self.dialog.note(f"warning: {auto} (ALTER SYSTEM) overrides "
                             f"{', '.join(overridden)}")

    def _can_restart(self) -> bool:
        return _config.live_root(self) and _config.systemd_running(self)

    @engine.event(stage=Stages.MISC, name="setup.pgtune.apply", after=("setup.options.set",),
                  condition=lambda self: not self.dry_run and _configured(self))
    def _apply(self) -> None:
        if self._new is None:
            return
        conf = str(self.env["SETUP_PG/conf"])
        host = self.resolve(conf)
        st = host.stat()
        if unchanged(self, conf, self._new, st.st_mode & 0o7777, st.st_uid, st.st_gid):
            return
        service = self._section()["service"]
        restart = self._can_restart()

        def systemctl() -> None:
            self.run(["systemctl", "restart", service])
        if restart:  # undone after the file is back: PostgreSQL runs with the old one
            self.transaction.append(engine.CallbackElement(
                f"restart {service} on rollback", do=lambda: None, undo=systemctl))
        self.transaction.append(engine.FileWrite(conf, self._new))
        what = ", ".join(f"{k} = {v}" for k, v in self._set)
        if restart:
            self.transaction.append(engine.CallbackElement(
                f"restart {service} ({what})", do=systemctl, undo=lambda: None))
        else:
            self.dialog.note(f"PostgreSQL: {what} set in {conf}: restart PostgreSQL to apply")
