"""What every setup run shares: its configuration, the answers kept from the
previous run (so a re-run asks only what is new), the host name, and, last thing
before the transaction ends, the post-install state that the next run (and
cleanup) reads: /var/lib/satchel/setup/recipe.json and answers.conf (0600,
secrets left out: they are found again where setup stored them).

Answer keys:

  SETUP/fqdn=str:HOST    the appliance's fully qualified host name (certificates,
                         URLs of the tools); default: the root's /etc/hostname, else
                         this machine's name
"""

from __future__ import annotations

import socket
from typing import List

from installer import engine
from installer.engine import Stages
from installer.engine.answers import parse_answers, render_answers
from installer.engine.environment import DEFAULT, PREVIOUS
from installer.errors import InputError
from installer.plugins.hooks._elements import unchanged
from installer.plugins.setup import _config

KEYS = (
    engine.Key("SETUP/fqdn", str, default=None,
               doc="the appliance's fully qualified host name"),
)


class Plugin(engine.PluginBase):
    KEYS = KEYS

    @engine.event(stage=Stages.SETUP, name="setup.config", priority=engine.PRIO_FIRST)
    def _config(self) -> None:
        cfg = _config.load(self)
        self.log.info("setup configuration of %s from %s", cfg.app, cfg.source)
        self._previous_answers()
        if self.env["SETUP/fqdn"] is None:
            self.env.set("SETUP/fqdn", self._default_fqdn(), source=DEFAULT)

    def _previous_answers(self) -> None:
        path = self.resolve(_config.ANSWERS_COPY)
        if not path.is_file():
            return
        # Keys a newer setup no longer has are dropped, not an error.
        values = parse_answers(path, self.env.keys, lenient=True)
        reused: List[str] = []
        for key, value, _where in values:
            if self.env.source(key.name) == DEFAULT:
                self.env.set(key.name, value, source=PREVIOUS, origin=_config.ANSWERS_COPY)
                reused.append(key.name)
        if reused:
            self.dialog.note(f"reconfiguring: {len(reused)} answer(s) kept from the "
                             f"previous setup ({_config.ANSWERS_COPY})")

    def _default_fqdn(self) -> str:
        try:
            name = self.resolve("/etc/hostname").read_text(encoding="utf-8").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            name = ""
        return name or socket.getfqdn()

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.ask_fqdn", priority=engine.PRIO_FIRST)
    def _ask(self) -> None:
        self.dialog.ask("SETUP/fqdn", "Host fully qualified DNS name of this server")

    @engine.event(stage=Stages.VALIDATION, name="setup.check_fqdn", priority=engine.PRIO_FIRST)
    def _check(self) -> None:
        fqdn = self.env["SETUP/fqdn"]
        if not fqdn or not _config.HOST_NAME.match(fqdn):
            raise InputError(f"SETUP/fqdn: {fqdn!r} is not a host name",
                             hint="letters, digits and '-' in dot-separated labels")

    @engine.event(stage=Stages.MISC, name="setup.remember", priority=engine.PRIO_LAST,
                  condition=lambda self: not self.dry_run)
    def _remember(self) -> None:
        cfg = _config.load(self)
        data = cfg.serialize()
        if not unchanged(self, _config.CONFIG_COPY, data, 0o600):
            self.transaction.append(engine.FileWrite(_config.CONFIG_COPY, data, mode=0o600))
        answers, _ = render_answers(self.env, secrets=False)
        if not unchanged(self, _config.ANSWERS_COPY, answers, 0o600):
            self.transaction.append(engine.FileWrite(_config.ANSWERS_COPY, answers,
                                                     mode=0o600))

