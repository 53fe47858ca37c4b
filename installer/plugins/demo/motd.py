"""Writes /etc/satchel-demo/motd from a question: the smallest real action."""

from __future__ import annotations

from installer import engine
from installer.engine import Stages

PATH = "/etc/satchel-demo/motd"


class Plugin(engine.PluginBase):
    KEYS = (
        engine.Key("DEMO/message", str, default="hello from satchel",
                   doc="Message of the day"),
        engine.Key("DEMO/mode", int, default=0o644, doc="Mode of the file"),
    )

    @engine.event(stage=Stages.CUSTOMIZATION, name="demo.ask")
    def _ask(self) -> None:
        self.dialog.ask("DEMO/message", "Message of the day")

    @engine.event(stage=Stages.VALIDATION, name="demo.plan")
    def _plan(self) -> None:
        self.plan(f"write {PATH} ({len(self.env['DEMO/message']) + 1} bytes)")

    @engine.event(stage=Stages.MISC, name="demo.write")
    def _write(self) -> None:
        data = (self.env["DEMO/message"] + "\n").encode("utf-8")
        self.transaction.append(engine.FileWrite(PATH, data, mode=self.env["DEMO/mode"],
                                                 step_id="demo.motd"))
