"""Show the plan and ask for confirmation, last thing before changes."""

from __future__ import annotations

from installer import engine
from installer.engine import Stages
from installer.errors import RefusedError


class Plugin(engine.PluginBase):
    KEYS = (
        engine.Key("CORE/confirm", bool, default=True,
                   doc="show the plan and ask before changing anything"),
    )

    @engine.event(stage=Stages.VALIDATION, name="core.confirm", priority=engine.PRIO_LAST,
                  condition=lambda self: not self.dry_run and not self.dialog.unattended
                  and bool(self.env["CORE/confirm"]))
    def _confirm(self) -> None:
        lines = self.planned or ["(no changes planned)"]
        self.dialog.note("Plan of changes:\n" + "\n".join(f"  - {line}" for line in lines))
        if not self.dialog.confirm("Proceed with these changes?", default=True):
            raise RefusedError("cancelled at confirmation, nothing changed")
