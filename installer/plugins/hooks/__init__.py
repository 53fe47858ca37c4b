"""`install hooks`: vdsm hooks onto a virtualization host, in ovirt-host-deploy's
layout (the bundle's `hooks/vdsm/`: hooks.d, packages.d, plugins).

Custom plugins (`hooks/vdsm/plugins/<name>/__init__.py`) are loaded when the engine
starts, through `extra_plugin_dirs`: from the bundle when it carries a hook set
(its files are checked against SHA256SUMS first, so no code from a damaged bundle
runs), else from the copies an earlier run installed under
/usr/share/satchel/hook-plugins/ (a later `install hooks` without the bundle runs
those). The run that loads them from the bundle copies them, byte for byte, to the
target.

A custom plugin uses satchel's plugin API (`installer.engine`), plus two helpers
from here:

    from installer.plugins.hooks import LocalRpms, unchanged

    self.transaction.append(LocalRpms(sorted(self.plugin_path.glob("*.rpm"))))
    if not unchanged(self, "/etc/x.conf", data, 0o644):
        self.transaction.append(engine.FileWrite("/etc/x.conf", data, mode=0o644))
"""

from __future__ import annotations

import pathlib
from typing import Any, List, Mapping, Optional

from installer.plugins.hooks._elements import LocalRpms, unchanged

__all__ = ["LocalRpms", "extra_plugin_dirs", "unchanged", "validate_recipe_section"]


def extra_plugin_dirs(bundle: Optional[pathlib.Path],
                      root: Optional[pathlib.Path]) -> List[pathlib.Path]:
    """The engine's hook: directories of custom plugins for this run."""
    from installer.plugins.hooks import _layout

    return _layout.plugin_dirs(bundle, root)


def validate_recipe_section(table: Mapping[str, Any]) -> List[str]:
    """Problems of a recipe's [hooks] section: `vdsm = "<dir>"`, a path relative to
    the recipe (the directory itself is checked when the bundle is built)."""
    from installer.plugins.hooks._layout import SET_NAME

    problems = []
    for key in sorted(table):
        value = table[key]
        if key != SET_NAME:
            problems.append(f"{key}: unknown key (the hook set is named {SET_NAME!r})")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{key}: expected a directory path (a string), "
                            f"got {type(value).__name__}")
    return problems
