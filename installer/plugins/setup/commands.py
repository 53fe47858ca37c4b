"""Post-setup commands: the recipe's `post_commands` (like xCAT's `makedhcp -n` and
`makedns -n` after an import), run in closeup, in order, each logged with its
output. A failing command rolls the whole setup back (what the commands before it
did is theirs to keep: logged as not undone). They run when this setup
changed something (a re-run that changes nothing runs none of them).

    [setup]
    post_commands = [["/usr/sbin/makedhcp", "-n"], ["/usr/sbin/makedns", "-n"]]

With --root other than /, a command runs on this machine with SATCHEL_ROOT set to
the root and the root as its working directory (a command that must run inside
the image does `chroot "$SATCHEL_ROOT" ...` itself).

Answer keys:

  SETUP/runPostCommands=bool:true   run the post-setup commands
"""

from __future__ import annotations

from typing import Any, List, Sequence

from installer import engine
from installer.engine import Stages
from installer.plugins.setup import _config

KEYS = (
    engine.Key("SETUP/runPostCommands", bool, default=True,
               doc="run the recipe's post-setup commands when setup changed something"),
)
TIMEOUT = 3600


def check_commands(value: Any) -> List[str]:
    """Problems of `post_commands` (each as `[i]: message`)."""
    if not isinstance(value, list):
        return [": expected a list of commands, each a list of strings"]
    problems = []
    for i, argv in enumerate(value):
        if (not isinstance(argv, list) or not argv
                or not all(isinstance(a, str) and a and "\0" not in a for a in argv)):
            problems.append(f"[{i}]: expected a command as a non-empty list of "
                            "non-empty strings")
    return problems



class Plugin(engine.PluginBase):
    KEYS = KEYS

    def _commands(self) -> List[Sequence[str]]:
        return list(_config.load(self).table.get("post_commands", []))

    @engine.event(stage=Stages.VALIDATION, name="setup.commands.plan",
                  condition=lambda self: _config.configured_any(self))
    def _plan(self) -> None:
        if self.env["SETUP/runPostCommands"]:
            for argv in self._commands():
                self.plan(f"run after setup, when it changed something: {' '.join(argv)}")

    @engine.event(stage=Stages.CLOSEUP, name="setup.commands.run", priority=engine.PRIO_LAST,
                  condition=lambda self: not self.dry_run and _config.configured_any(self))
    def _run(self) -> None:
        commands = self._commands()
        if not commands or not self.env["SETUP/runPostCommands"]:
            return
        if not self.transaction.changes():
            self.dialog.note("nothing changed: post-setup commands not run")
            return
        env = {"SATCHEL_ROOT": str(self.root)}
        cwd = None if _config.live_root(self) else str(self.root)
        for argv in commands:
            def do(argv: Sequence[str] = argv) -> None:
                proc = self.run(list(argv), env=env, cwd=cwd,
                                timeout=TIMEOUT)
                for line in (proc.stdout or "").splitlines():
                    self.log.info("  %s", line)
            def undo(argv: Sequence[str] = argv) -> None:
                self.log.warning("what `%s` did is not undone (a command has no undo)",
                                 " ".join(argv))
            self.transaction.append(engine.CallbackElement(
                f"post-setup command {' '.join(argv)}", do=do, undo=undo))
