"""What every cleanup run shares: "nothing to clean" when setup left nothing that
cleanup removes (then no confirmation is asked and nothing changes), and the
closing messages, as engine-cleanup's users know them:

    Finished cleanup; it is now safe to re-run setup.
    Note: after re-installing, hosts have to be re-installed or re-approved.

(the note when the database was kept), after the list of files kept because
they were edited since setup wrote them.
"""

from __future__ import annotations

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT
from installer.plugins.cleanup import _facts

FINISHED = "Finished cleanup; it is now safe to re-run setup."
KEPT_DB_NOTE = "Note: after re-installing, hosts have to be re-installed or re-approved."
NOTHING = "Nothing to clean: setup left nothing here that cleanup removes."


class Plugin(engine.PluginBase):

    @engine.event(stage=Stages.VALIDATION, name="cleanup.summary", priority=engine.PRIO_LOW)
    def _summary(self) -> None:
        found = _facts.summary(self)
        if found.work:
            return
        self.dialog.note(NOTHING)
        # Nothing to confirm either (unless the user asked for a confirmation).
        if "CORE/confirm" in self.env.keys and not self.env.answered("CORE/confirm"):
            self.env.set("CORE/confirm", False, source=DEFAULT)

    @engine.event(stage=Stages.CLOSEUP, name="cleanup.finished", priority=engine.PRIO_LAST,
                  condition=lambda self: not self.dry_run)
    def _finished(self) -> None:
        found = _facts.summary(self)
        if found.kept:
            self.dialog.note("Kept, changed since setup wrote them (remove them too with "
                             "--remove-changed):\n" + "\n".join(
                                 f"  {path}{f' ({why})' if why else ''}"
                                 for path, why in found.kept))
        self.dialog.note(FINISHED)
        if found.database_kept:
            self.dialog.note(KEPT_DB_NOTE)
