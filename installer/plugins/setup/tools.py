"""Configuration of the appliance's admin tools (engine-setup's log collector, ISO
uploader and image uploader): where the engine is, which user, and where that
user's password is — never the password itself.

    [setup.tools]
    log_collector = "/etc/engine/engine-log-collector.conf"     # optional
    iso_uploader = "/etc/engine/engine-iso-uploader.conf"       # optional
    image_uploader = "/etc/engine/engine-image-uploader.conf"   # optional
    password_file = "/etc/engine/.tools-password"               # required

Each named config file is written whole (0644, root: it holds no secret), one INI
section per tool as ovirt's tools read them:

    [LogCollector]                     ([ISOUploader], [ImageUploader])
    engine=<SETUP/fqdn>:<SETUP_CONFIG/httpsPort when that key exists, else 443>
    user=<SETUP/adminUser>
    passwd-file=<password_file>

The password file holds the admin password on one line (0600, root; the state
registry records it without a checksum). A re-run that would write the same
bytes writes nothing.

Answer keys:

  SETUP/adminUser=str:admin@internal   the user the tools log in as
  SETUP/adminPassword=str:PASSWORD     (secret) that user's password; required the
                                       first time (asked, or an error naming this key
                                       when unattended); on later runs read back from
                                       password_file when not given
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.environment import PLUGIN
from installer.errors import InputError
from installer.plugins.hooks._elements import unchanged
from installer.plugins.setup import _config
from installer.plugins.setup._records import RecordedFileWrite

USER, PASSWORD = "SETUP/adminUser", "SETUP/adminPassword"
KEYS = (
    engine.Key(USER, str, default="admin@internal", doc="the user the admin tools log in as"),
    engine.Key(PASSWORD, str, secret=True, default=None,
               doc="the admin user's password, kept only in the tools' 0600 password "
                   "file; required the first time, later read back from that file"),
)
# recipe key -> INI section of that tool's config
TOOLS = (("log_collector", "LogCollector"), ("iso_uploader", "ISOUploader"),
         ("image_uploader", "ImageUploader"))
SPEC = {"log_collector": (str, False), "iso_uploader": (str, False),
        "image_uploader": (str, False), "password_file": (str, True)}
HTTPS_PORT = "SETUP_CONFIG/httpsPort"
CONFIG_MODE, PASSWORD_MODE = 0o644, 0o600


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, SPEC)
    if problems:
        return problems
    seen: Dict[str, str] = {}
    for key in sorted(table):
        problem = _config.absolute(table[key])
        if problem:
            problems.append(f"{key}: {problem}")
        elif table[key] in seen:
            problems.append(f"{key}: {table[key]} is also {seen[table[key]]}")
        seen.setdefault(table[key], key)
    return problems


def password_problem(value: Any) -> str:
    if not value:
        return "empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character (such as a newline)"
    return ""


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def _section(self) -> Mapping[str, Any]:
        return _config.load(self).section("tools")

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.tools.ask",
                  condition=lambda self: _config.configured(self, "tools"))
    def _ask(self) -> None:
        self.dialog.ask(USER, "User the admin tools log in as")
        if self.env.answered(PASSWORD):
            return
        stored = _config.read_target(self, self._section()["password_file"])
        text = stored.decode("utf-8", "replace").rstrip("\n") if stored else ""
        if text:
            self.env.set(PASSWORD, text, source=PLUGIN)
        elif not self.dialog.unattended:
            self.dialog.ask(PASSWORD, f"Password of {self.env[USER]}")

    @engine.event(stage=Stages.VALIDATION, name="setup.tools.check",
                  condition=lambda self: _config.configured(self, "tools"))
    def _check(self) -> None:
        section = self._section()
        problems = []
        user = self.env[USER]
        if not user or any(c.isspace() or ord(c) < 32 for c in user):
            problems.append(f"{USER}: {user!r} is not a user name (no blanks)")
        password = self.env[PASSWORD]
        if password is None:
            problems.append(f"{PASSWORD}: required the first time (there is no "
                            f"{section['password_file']} yet)")
        elif password_problem(password):
            problems.append(f"{PASSWORD}: not allowed: {password_problem(password)}")
        if problems:
            raise InputError("\n".join(problems),
                             hint=f"give it with --set {PASSWORD}=... or in an answer file "
                                  "(or run attended to be asked); nothing was changed")
        for path, data, mode in self._files():
            if not unchanged(self, path, data, mode):
                self.plan(f"write {path} ({mode:04o}, root)")

    def _engine_address(self) -> str:
        declared = HTTPS_PORT in self.env.keys  # by service_config.py, when it is there
        port = self.env[HTTPS_PORT] if declared else None
        return f"{self.env['SETUP/fqdn']}:{port or 443}"

    def _files(self) -> List[Tuple[str, bytes, int]]:
        """(path, content, mode) of every file this plugin owns."""
        section = self._section()
        app = _config.load(self).app
        out = []
        for key, ini in TOOLS:
            if key not in section:
                continue
            text = (f"# Written by satchel `install setup` for {app}; re-run setup to "
                    "change it.\n"
                    f"[{ini}]\nengine={self._engine_address()}\nuser={self.env[USER]}\n"
                    f"passwd-file={section['password_file']}\n")
            out.append((str(section[key]), text.encode("utf-8"), CONFIG_MODE))
        secret = (str(self.env[PASSWORD]) + "\n").encode("utf-8")
        out.append((str(section["password_file"]), secret, PASSWORD_MODE))
        return out

    @engine.event(stage=Stages.MISC, name="setup.tools.write",
                  condition=lambda self: not self.dry_run and _config.configured(self, "tools"))
    def _write(self) -> None:
        password_file = self._section()["password_file"]
        for path, data, mode in self._files():
            if not unchanged(self, path, data, mode):
                self.transaction.append(RecordedFileWrite(path, data, mode,
                                                          secret=path == password_file))
