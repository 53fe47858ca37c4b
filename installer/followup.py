"""`install setup` at the end of `install import`, when the recipe asks for it
([setup] run_after_import = true in the bundle's manifest).

Setup is its own run (its own lock, log and transaction) after the import has
committed: its checks need the packages the import installed. So a setup that
fails is rolled back by itself and leaves the import in place; the message says
to fix the cause and run `install setup` again. The answers and --set values of
the import are passed on; keys only the import knows are skipped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, FrozenSet, List

from installer.errors import EXIT_OK


def wants_setup(bundle: Any) -> bool:
    if bundle is None:
        return False
    from installer.restore import bundleinfo

    try:
        return bool(bundleinfo.component(bundle, "setup").get("run_after_import"))
    except Exception:  # the import itself reported a bad bundle already
        return False


def group_keys(*groups: str) -> FrozenSet[str]:
    """The answer keys the plugins of `groups` declare."""
    from installer.engine.loader import group_plugins

    names: set = set()
    for group in groups:
        for cls, _ in group_plugins(group):
            names.update(k.name for k in getattr(cls, "KEYS", ()))
            module = sys.modules.get(cls.__module__)
            names.update(k.name for k in getattr(module, "KEYS", ()))
    return frozenset(names)


def import_foreign_keys(bundle: Any) -> FrozenSet[str]:
    """Setup's keys, which the import's answers may carry when setup follows it."""
    return group_keys("setup") if wants_setup(bundle) else frozenset()


def setup_after_import(args: argparse.Namespace, settings: List[str], bundle: Any) -> int:
    """Run setup after a successful import; returns setup's exit code."""
    from installer.engine import Runner

    if not wants_setup(bundle):
        return EXIT_OK
    out = sys.stdout
    if args.dry_run:
        out.write("then: install setup (the recipe runs it after the import)\n")
        return EXIT_OK
    out.write("\nimport complete; running setup (the recipe runs it after the import)\n")
    out.flush()
    runner = Runner(
        "setup", root=args.root, plugin_dirs=args.plugin_dir, answers=args.answers,
        settings=settings, unattended=args.unattended, dialog=args.dialog,
        debug=args.debug, bundle=bundle, foreign_keys=group_keys("importer"))
    code = runner.run()
    if code != EXIT_OK:
        sys.stderr.write("the import is complete and stays; setup did not finish (see above): "
                         "fix the cause and run `install setup` again\n")
    return code
