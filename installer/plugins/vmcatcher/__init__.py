"""`install vmcatcher register`: configure the OpenNebula image handler and wire it
into vmcatcher (plugin `register.py`). `install vmcatcher handle` runs the handler
itself (installer.vmcatcher), without the engine.

Also the validator of a recipe's [vmcatcher] section (bundler/recipe.py calls it):

    [vmcatcher]
    endpoint = "http://one.example.org:2633/RPC2"   # required
    datastore = "default"
    image_format = "raw"                  # raw | qcow2
    first_version_permissions = "600"     # three octal digits, as a string
    ready_timeout = 600                   # seconds, > 0
    env_file = "/etc/sysconfig/vmcatcher"
    cache_dir = "/var/lib/vmcatcher/cache"

Passwords do not belong in a recipe: VMCATCHER/password is asked on the target
(hidden input) or given in an answer file.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

from installer.plugins.vmcatcher import _checks

_SECTION: Dict[str, Callable[[Any], Optional[str]]] = {
    "endpoint": _checks.endpoint,
    "datastore": _checks.name,
    "image_format": _checks.image_format,
    "first_version_permissions": _checks.permissions,
    "ready_timeout": _checks.timeout,
    "env_file": lambda v: _checks.target_path(v) if isinstance(v, str)
    else "expected an absolute path as a string",
    "cache_dir": lambda v: _checks.target_path(v, shell=True) if isinstance(v, str)
    else "expected an absolute path as a string",
}
REQUIRED = ("endpoint",)


def validate_recipe_section(table: Mapping[str, Any]) -> List[str]:
    """Every problem of a recipe's [vmcatcher] table, as "key: message"."""
    problems: List[str] = []
    for key in sorted(table):
        if key in ("password", "credentials", "user"):
            problems.append(f"{key}: credentials do not belong in a recipe: the password "
                            "is asked on the target (VMCATCHER/password) or comes from "
                            "an answer file")
        elif key not in _SECTION:
            problems.append(f"{key}: unknown key (known: {', '.join(_SECTION)})")
    for key in REQUIRED:
        if key not in table:
            problems.append(f"{key}: missing")
    for key, check in _SECTION.items():
        if key in table:
            message = check(table[key])
            if message:
                problems.append(f"{key}: {message}")
    return problems
