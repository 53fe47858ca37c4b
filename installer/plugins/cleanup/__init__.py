"""`install cleanup`: undo what `install setup` did, so that setup can run again —
engine-cleanup's job, driven by the state registry (/var/lib/satchel/state.json)
instead of guesses.

Command line, as engine-cleanup's users know it (its --help shows only these):

    install cleanup            asks "Drop database? ..." (default: no), then cleans
    install cleanup -u         --unattended: asks nothing, drops the database
    install cleanup -d         --dont-drop-db: keeps the database
    install cleanup -h         --help

The engine's other options (--root, --set, --answers, --log, --dry-run, --debug,
...) and `--remove-changed` are accepted but not shown.

What it does, from what setup recorded (the registry's "setup" part):

- services (services.py): the main and auxiliary services setup started are
  stopped (`systemctl stop`, only when the root is this machine's / and systemd
  runs), and the ones setup enabled are disabled (`systemctl disable`, also in a
  --root image: a service left enabled would start at boot without its
  configuration or database); undo starts/enables them again. Packages are never
  removed.
- files (files.py): files and symlinks setup created (PKI and keystores,
  generated configuration, .pgpass, sysctl.d, tool configuration, setup's
  answers.conf) are removed, and then the directories setup created when they are
  empty. A file whose content differs from what setup wrote (its sha256) was
  edited: it is kept and listed, unless --remove-changed. Files setup replaced
  (that existed before it) are left as they are. Kept on purpose:
  /var/lib/satchel/setup/recipe.json, the appliance's setup configuration, so
  that `install setup` can run again without the bundle (sequence I below).
- database (database.py): a pg_dump backup (custom format, mode 0600, under
  /var/lib/satchel/backup/cleanup/, its path printed), then DROP DATABASE, local or
  remote, connected as the application's role with the password from the .pgpass
  setup wrote (an owner may drop its database), or as the admin role when DB/user
  (DB/passwordFile, DB/password, DB/host, DB/port) are given — then the role is
  dropped too when setup created it, with its .pgpass line. A role that stays
  keeps its .pgpass line: the next setup logs in as it. With -d the database is
  kept, with the .pgpass that reaches it, so that the next setup reuses it.
- NFS is left alone: the ISO domain directory and everything in it, /etc/exports,
  /etc/exports.d/ and /etc/sysconfig/nfs.

Every change goes through the transaction: a failure at any point restores the
removed files, recreates the database from the backup and restarts the stopped
services; the registry is written only when the transaction commits (removed
files and dirs become "removed" records, dropped databases and stopped services
are forgotten).

It is idempotent: a second run finds nothing to clean and changes nothing. Both
of engine-cleanup's sequences work, because the registry lives where package
removal does not touch it:

    I:  install cleanup; rpm -e <appliance>; rpm -i <appliance>; install setup
    II: rpm -e <appliance>; rpm -i <appliance>; install cleanup; install setup

When the registry is missing or unreadable but setup's traces are there
(answers.conf, the PKI, the database configuration...), cleanup cannot know what
setup created: it refuses before changing anything (exit 3) and says what to do.
No registry and no traces: nothing to clean (exit 0).

Answer keys:

  CLEANUP/dropDatabase=bool   drop the application's database (asked; default:
                              no when asked, yes with --unattended; -d sets false)
  CLEANUP/removeChanged=bool:false  also remove files edited since setup wrote
                              them (--remove-changed)
  DB/host=str, DB/port=int, DB/user=str, DB/passwordFile=path, DB/password=str
                              the admin connection (optional): the database is
                              dropped as this role, and the application's role too
                              when setup created it
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Dict, List, Optional

# The command line engine-cleanup users know: only these are shown by --help.
SHOWN = ("-h", "-d", "-u")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """-d/--dont-drop-db, -u/--unattended (replacing the engine's --unattended) and
    the hidden --remove-changed; every other option stays accepted but hidden."""
    # -u/--unattended takes over the engine's --unattended (same dest): argparse's
    # "resolve" conflict handler, for this one option, on the group it lands in.
    group = parser._optionals
    previous = group.conflict_handler
    group.conflict_handler = "resolve"
    try:
        parser.add_argument("-u", "--unattended", action="store_true",
                            help="no questions: drop the database unless -d is given")
    finally:
        group.conflict_handler = previous
    parser.add_argument("-d", "--dont-drop-db", action="store_true",
                        help="keep the database (to reuse it in the next setup)")
    parser.add_argument("--remove-changed", action="store_true", help=argparse.SUPPRESS)
    for action in parser._actions:
        if not any(opt in SHOWN for opt in action.option_strings):
            action.help = argparse.SUPPRESS
    parser.epilog = None  # no list of answer keys or engine options


def settings_from_args(args: argparse.Namespace) -> Dict[str, str]:
    settings = {}
    if getattr(args, "dont_drop_db", False):
        settings["CLEANUP/dropDatabase"] = "false"
    if getattr(args, "remove_changed", False):
        settings["CLEANUP/removeChanged"] = "true"
    return settings


def extra_plugin_dirs(bundle: Optional[pathlib.Path],
                      root: Optional[pathlib.Path]) -> List[pathlib.Path]:
    """No extra plugins. The engine calls this hook before it reads the state
    registry, which makes it the one place to refuse an unreadable registry with
    exit 3 (the engine's own reading would exit 2, after nothing was changed either)."""
    if root is not None:
        from installer.plugins.cleanup import _facts

        _facts.check_registry(pathlib.Path(root))
    return []
