"""Service configuration: every template `*.conf.in` of a directory on the target
(installed by the appliance's package) rendered into the service's conf.d
directory, as engine-setup writes ovirt-engine's engine.conf.d/10-setup-*.conf.

    [setup.config]
    templates = "/usr/share/engine/conf"   # required: *.conf.in, on the target
    dir = "/etc/engine/engine.conf.d"      # required: where the rendered files go
    heap_max = "1g"                        # default 1g  (the answer's default)
    http_port = 80                         # default 80
    https_port = 443                       # default 443

`<templates>/NAME.conf.in` becomes `<dir>/NAME.conf` (0644, root), rendered with
Python's string.Template: `${NAME}` (or `$NAME`) is replaced, `$$` is a dollar.
The variables:

  FQDN                 SETUP/fqdn
  HTTP_PORT HTTPS_PORT SETUP_CONFIG/httpPort, SETUP_CONFIG/httpsPort
  HEAP_MAX             SETUP_CONFIG/heapMax
  JAVA_HOME            SETUP_RUNTIME/javaHome (the runtime prereq found: [setup.runtime])
  PKI_CA               the CA certificate's path ([setup.pki])
  DB_HOST DB_PORT      DB/host, DB/port ([setup.database])
  DB_DATABASE DB_USER  SETUP_DB/database, SETUP_DB/user ([setup.database])

No password is ever a variable. A template naming a variable that is unknown, or
one whose source is not configured, is refused at validation (naming the template
and the variable), before any change. A file already as rendered is not written
again (a re-run changes nothing).

Answer keys:

  SETUP_CONFIG/httpPort=int:80     the service's HTTP port (1-65535)
  SETUP_CONFIG/httpsPort=int:443   the service's HTTPS port (1-65535, not the HTTP one)
  SETUP_CONFIG/heapMax=str:1g      the Java VM's maximum heap (a number with k, m or g:
                                   512m, 4g)
"""

from __future__ import annotations

import importlib
import re
import string
from typing import Any, Dict, List, Mapping, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT
from installer.errors import InputError
from installer.plugins.hooks._elements import unchanged
from installer.plugins.setup import _config

KEYS = (
    engine.Key("SETUP_CONFIG/httpPort", int, default=None,
               doc="HTTP port of the service (1-65535); default: the recipe's http_port"),
    engine.Key("SETUP_CONFIG/httpsPort", int, default=None,
               doc="HTTPS port of the service (1-65535); default: the recipe's https_port"),
    engine.Key("SETUP_CONFIG/heapMax", str, default=None,
               doc="maximum Java heap, like 512m or 4g; default: the recipe's heap_max"),
)
DEFAULTS = {"http_port": 80, "https_port": 443, "heap_max": "1g"}
SUFFIX = ".in"
MODE = 0o644
HEAP = re.compile(r"^[1-9][0-9]{0,9}[kKmMgG]$")
VARIABLES = ("FQDN", "HTTP_PORT", "HTTPS_PORT", "HEAP_MAX", "JAVA_HOME", "PKI_CA",
             "DB_HOST", "DB_PORT", "DB_DATABASE", "DB_USER")


def port_problem(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"{value!r} is not a port (an integer 1-65535)"
    return None


def heap_problem(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not HEAP.match(value):
        return f"{value!r} is not a heap size (a number with k, m or g, like 512m or 4g)"
    return None


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, {
        "templates": (str, True), "dir": (str, True), "heap_max": (str, False),
        "http_port": (int, False), "https_port": (int, False)})
    for key in ("templates", "dir"):
        if isinstance(table.get(key), str):
            problem = _config.absolute(table[key])
            if problem:
                problems.append(f"{key}: {problem}")
    for key in ("http_port", "https_port"):
        if isinstance(table.get(key), int):
            problem = port_problem(table[key])
            if problem:
                problems.append(f"{key}: {problem}")
    if isinstance(table.get("heap_max"), str):
        problem = heap_problem(table["heap_max"])
        if problem:
            problems.append(f"heap_max: {problem}")
    return problems


def placeholders(text: str) -> List[Tuple[Optional[str], int]]:
    """(variable name, line) of each placeholder of a string.Template text; the
    name is None for an invalid one (a `$` not followed by a name or `$`)."""
    out: List[Tuple[Optional[str], int]] = []
    for mo in string.Template.pattern.finditer(text):
        line = text.count("\n", 0, mo.start()) + 1
        if mo.group("invalid") is not None:
            out.append((None, line))
        elif mo.group("escaped") is None:
            out.append((mo.group("named") or mo.group("braced"), line))
    return out


class Plugin(engine.PluginBase):
    KEYS = KEYS
    rendered: List[Tuple[str, str, bytes]] = []  # (template, target path, content)

    def _section(self) -> Dict[str, Any]:
        return dict(DEFAULTS, **_config.load(self).section("config"))

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.service_config.ask",
                  condition=lambda self: _config.configured(self, "config"))
    def _ask(self) -> None:
        section = self._section()
        for key, name in (("SETUP_CONFIG/httpPort", "http_port"),
                          ("SETUP_CONFIG/httpsPort", "https_port"),
                          ("SETUP_CONFIG/heapMax", "heap_max")):
            if self.env[key] is None:
                self.env.set(key, section[name], source=DEFAULT)
        self.dialog.ask("SETUP_CONFIG/httpPort", "HTTP port of the service")
        self.dialog.ask("SETUP_CONFIG/httpsPort", "HTTPS port of the service")
        self.dialog.ask("SETUP_CONFIG/heapMax", "Maximum Java heap (like 512m or 4g)")

    # Last in validation: the runtime, PKI and database plugins have set their keys.
    @engine.event(stage=Stages.VALIDATION, name="setup.service_config.check",
                  priority=engine.PRIO_LAST,
                  condition=lambda self: _config.configured(self, "config"))
    def _check(self) -> None:
        http, https = self.env["SETUP_CONFIG/httpPort"], self.env["SETUP_CONFIG/httpsPort"]
        for key, value in (("SETUP_CONFIG/httpPort", http), ("SETUP_CONFIG/httpsPort", https)):
            problem = port_problem(value)
            if problem:
                raise InputError(f"{key}: {problem}")
        if http == https:
            raise InputError(f"SETUP_CONFIG/httpsPort: {https} is also SETUP_CONFIG/httpPort",
                             hint="the HTTP and HTTPS ports must differ")
        problem = heap_problem(self.env["SETUP_CONFIG/heapMax"])
        if problem:
            raise InputError(f"SETUP_CONFIG/heapMax: {problem}")
        self.rendered = self._render()
        for template, target, data in self.rendered:
            if unchanged(self, target, data, MODE):
                self.log.info("%s is up to date (from %s)", target, template)
            else:
                self.plan(f"config {target} from {template}")

    def _variables(self) -> Tuple[Dict[str, str], Dict[str, str]]:
        """(values, reasons): each variable has either a value or the reason it has none."""
        cfg = _config.load(self)
        env = self.env
        values = {"FQDN": str(env["SETUP/fqdn"]),
                  "HTTP_PORT": str(env["SETUP_CONFIG/httpPort"]),
                  "HTTPS_PORT": str(env["SETUP_CONFIG/httpsPort"]),
                  "HEAP_MAX": str(env["SETUP_CONFIG/heapMax"])}
        reasons: Dict[str, str] = {}
        java = env.get("SETUP_RUNTIME/javaHome") if "SETUP_RUNTIME/javaHome" in env else None
        if java is not None:
            values["JAVA_HOME"] = str(java)
        else:
            reasons["JAVA_HOME"] = ("SETUP_RUNTIME/javaHome has no value (the recipe's "
                                    "[setup.runtime] finds the Java VM)")
        if cfg.has("pki"):
            values["PKI_CA"] = self._ca_cert(cfg)
        else:
            reasons["PKI_CA"] = "the recipe has no [setup.pki]"
        db = cfg.section("database")
        sources = {"DB_HOST": ("DB/host", None), "DB_PORT": ("DB/port", None),
                   "DB_DATABASE": ("SETUP_DB/database", "name"),
                   "DB_USER": ("SETUP_DB/user", "user")}
        for var, (key, fallback) in sources.items():
            value = env.get(key) if key in env else None
            if value is None and fallback:
                value = db.get(fallback)
            if not cfg.has("database"):
                reasons[var] = "the recipe has no [setup.database]"
            elif value is None:
                reasons[var] = f"{key} has no value"
            else:
                values[var] = str(value)
        return values, reasons

    def _ca_cert(self, cfg: _config.SetupConfig) -> str:
        try:  # imported here: the pki plugin is a sibling module, not a dependency
            pki = importlib.import_module("installer.plugins.setup.pki")
            return str(pki.ca_cert(cfg))
        except (ImportError, AttributeError) as exc:
            raise InputError(f"setup.config: cannot find the CA certificate's path: {exc}",
                             hint="the setup package's pki module is missing or broken"
                             ) from None

    def _render(self) -> List[Tuple[str, str, bytes]]:
        section = self._section()
        folder, dest = section["templates"], section["dir"]
        host = self.resolve(folder)
        if not host.is_dir():
            raise InputError(f"setup.config.templates: {folder} is not a directory on the "
                             "target", hint="is the package that ships the templates "
                             "installed?")
        values, reasons = self._variables()
        out = []
        for path in sorted(host.glob("*.conf" + SUFFIX)):
            template = f"{folder}/{path.name}"
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"template {template}: cannot read it: {exc}") from None
            for name, line in placeholders(text):
                if name is None:
                    raise InputError(f"template {template}, line {line}: a '$' that starts "
                                     "no variable", hint="write $$ for a dollar sign")
                if name in reasons:
                    raise InputError(f"template {template}, line {line}: ${{{name}}} has "
                                     f"no value: {reasons[name]}")
                if name not in values:
                    raise InputError(f"template {template}, line {line}: unknown variable "
                                     f"${{{name}}}", hint="known: " + ", ".join(VARIABLES))
            data = string.Template(text).substitute(values).encode("utf-8")
            out.append((template, f"{dest}/{path.name[:-len(SUFFIX)]}", data))
        if not out:
            self.dialog.note(f"setup.config: no *.conf{SUFFIX} templates in {folder}")
        return out

    @engine.event(stage=Stages.MISC, name="setup.service_config.write",
                  condition=lambda self: not self.dry_run
                  and _config.configured(self, "config"))
    def _write(self) -> None:
        for _template, target, data in self._render():
            if not unchanged(self, target, data, MODE):
                self.transaction.append(engine.FileWrite(target, data, mode=MODE,
                                                         owner="root", group="root"))
