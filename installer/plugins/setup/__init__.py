"""`install setup`: configure the installed appliance — engine-setup's feature set as
generic plugins, driven by the recipe's [setup] section and the answers. A re-run
is a reconfigure or an upgrade: it asks only what is new and changes nothing when
nothing is new.

The recipe's section travels in the bundle's manifest (components.setup); every
setup run keeps a copy on the target (/var/lib/satchel/setup/recipe.json, with the
non-secret answers in /var/lib/satchel/setup/answers.conf), so a later
`install setup` needs no bundle. Templates, schema scripts and ISO images come from
the appliance's installed packages (paths named in the section), as engine-setup
takes them from ovirt-engine's.

    [setup]
    app = "engine"                 # required: names files (sysctl.d, exports.d, ...)
    run_after_import = true        # `install import` runs setup when it has committed
    post_commands = [["/usr/sbin/makedhcp", "-n"]]   # run in closeup (commands.py)

    [setup.sysctl]                 # sysctl.py
    [setup.runtime]                # prereq.py
    [setup.pki]                    # pki.py
    [setup.config]                 # service_config.py
    [setup.database]               # database.py
    [setup.options]                # options.py
    [setup.postgresql]             # pgtune.py
    [setup.iso_domain]             # isodomain.py
    [setup.tools]                  # tools.py
    [setup.services]               # services.py

Each subsection is documented and validated by the module that owns it (its
`check_section(table) -> [problems]`); a plugin whose subsection is absent does
nothing. The builder calls `validate_recipe_section` (bundler/recipe.py).
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Dict, List, Mapping

# subsection -> module of this package that validates and applies it
SUBSECTIONS: Dict[str, str] = {
    "sysctl": "sysctl",
    "runtime": "prereq",
    "pki": "pki",
    "config": "service_config",
    "database": "database",
    "options": "options",
    "postgresql": "pgtune",
    "iso_domain": "isodomain",
    "tools": "tools",
    "services": "services",
}
APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def validate_recipe_section(table: Mapping[str, Any]) -> List[str]:
    """Problems of a recipe's [setup] section, each as `key.path: message`."""
    problems: List[str] = []
    app = table.get("app")
    if app is None:
        problems.append("app: required (the appliance's name, e.g. \"engine\")")
    elif not isinstance(app, str) or not APP_NAME.match(app):
        problems.append(f"app: {app!r} is not a name (lower-case letters, digits, '-'; "
                        "starting with a letter; at most 32)")
    after = table.get("run_after_import", False)
    if not isinstance(after, bool):
        problems.append("run_after_import: expected true or false")
    from installer.plugins.setup import commands

    problems.extend(f"post_commands{p}" for p in commands.check_commands(
        table.get("post_commands", [])))
    for key in sorted(table):
        if key in ("app", "run_after_import", "post_commands"):
            continue
        module = SUBSECTIONS.get(key)
        if module is None:
            problems.append(f"{key}: unknown key (known: app, run_after_import, "
                            f"post_commands, {', '.join(sorted(SUBSECTIONS))})")
            continue
        value = table[key]
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a table ([setup.{key}])")
            continue
        checker = importlib.import_module(f"installer.plugins.setup.{module}")
        problems.extend(f"{key}.{p}" for p in checker.check_section(value))
    return problems
