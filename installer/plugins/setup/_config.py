"""The setup configuration (the recipe's [setup] section) and what setup plugins
share: where it comes from, the paths of setup's own state, small helpers.

The section comes from the bundle's manifest (components.setup) when setup runs
from a bundle, else from the copy the previous setup run kept on the target.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from installer.errors import InputError

STATE_DIR = "/var/lib/satchel/setup"
CONFIG_COPY = STATE_DIR + "/recipe.json"      # the [setup] section of the last run
ANSWERS_COPY = STATE_DIR + "/answers.conf"    # its non-secret answers (0600)
BACKUP_DIR = "/var/lib/satchel/backup/setup"  # database backups (pg_dump) of upgrades

HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class SetupConfig:
    """The [setup] section: `cfg.app`, `cfg.section("pki")` ({} when absent)."""

    def __init__(self, table: Mapping[str, Any], source: str) -> None:
        self.table: Dict[str, Any] = dict(table)
        self.source = source

    @property
    def app(self) -> str:
        return str(self.table["app"])

    def section(self, name: str) -> Dict[str, Any]:
        value = self.table.get(name)
        return dict(value) if isinstance(value, Mapping) else {}

    def has(self, name: str) -> bool:
        return isinstance(self.table.get(name), Mapping)

    def serialize(self) -> bytes:
        return (json.dumps(self.table, sort_keys=True, indent=1) + "\n").encode()


def _from_bundle(bundle: Optional[pathlib.Path]) -> Optional[Dict[str, Any]]:
    if bundle is None or not (bundle / "manifest.json").is_file():
        return None
    from installer.restore import bundleinfo

    return bundleinfo.component(bundle, "setup") or None


def load(plugin: Any) -> SetupConfig:
    """The run's setup configuration (read once per run, kept on the context)."""
    ctx = plugin._context
    cached = getattr(ctx, "_setup_config", None)
    if cached is not None:
        return cached
    table = _from_bundle(plugin.bundle)
    source = f"the bundle's manifest ({plugin.bundle})"
    if table is None:
        copy = plugin.resolve(CONFIG_COPY)
        source = CONFIG_COPY
        try:
            table = json.loads(copy.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                "no setup configuration: neither a bundle with a [setup] section nor "
                f"{CONFIG_COPY} from an earlier setup",
                hint="run the `install` file of the appliance's bundle, or pass --bundle DIR"
            ) from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {CONFIG_COPY}: {exc}",
                             hint="run setup from the bundle to rewrite it") from None
    from installer.plugins.setup import validate_recipe_section

    problems = validate_recipe_section(table)
    if problems:
        raise InputError(f"bad setup configuration in {source}: " + "; ".join(problems))
    cfg = SetupConfig(table, source)
    ctx._setup_config = cfg
    return cfg


def configured(plugin: Any, name: str) -> bool:
    """Whether the [setup.<name>] subsection is present (the plugin's condition).
    False when there is no configuration at all (base reports that)."""
    try:
        return load(plugin).has(name)
    except InputError:
        return False


def configured_any(plugin: Any) -> bool:
    """Whether there is a setup configuration at all (setup.config reports why not)."""
    try:
        load(plugin)
    except InputError:
        return False
    return True


# -- small helpers for plugins ----------------------------------------------------------

def live_root(plugin: Any) -> bool:
    """The root is this machine's / (commands may touch running services)."""
    return os.path.realpath(str(plugin.root)) == "/"


def systemd_running(plugin: Any) -> bool:
    return live_root(plugin) and os.path.isdir("/run/systemd/system")


def read_target(plugin: Any, path: str) -> Optional[bytes]:
    """The bytes of a target file, or None when it does not exist."""
    try:
        return plugin.resolve(path).read_bytes()
    except FileNotFoundError:
        return None


def set_assignments(text: str, settings: Iterable[Tuple[str, str]], sep: str = " = ",
                    comment: str = "#") -> str:
    """`text` (a `key = value` config: sysctl.conf, postgresql.conf, sysconfig) with
    each (key, value) set: an existing active line is replaced in place (the last
    one wins in these formats, so every active line of the key is replaced), a
    missing key is appended. Other lines, comments and order are kept."""
    lines = text.splitlines()
    done = set()
    pattern = {k: re.compile(r"^\s*" + re.escape(k) + r"\s*[=\s]") for k, _ in settings}
    values = dict(settings)
    for i, line in enumerate(lines):
        if line.lstrip().startswith(comment):
            continue
        for key, rx in pattern.items():
            if rx.match(line):
                lines[i] = f"{key}{sep}{values[key]}"
                done.add(key)
    for key, value in settings:
        if key not in done:
            lines.append(f"{key}{sep}{value}")
    return "\n".join(lines) + "\n"


def check_table(table: Mapping[str, Any], spec: Mapping[str, Tuple[Any, bool]]) -> List[str]:
    """Generic subsection check: spec = {key: (type or tuple of types, required)}.
    Unknown keys, missing required keys and wrong types are problems."""
    problems = []
    for key in sorted(table):
        if key not in spec:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(spec))})")
    for key, (kind, required) in spec.items():
        if key not in table:
            if required:
                problems.append(f"{key}: required")
            continue
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            problems.append(f"{key}: expected {_names(kinds)}, got a boolean")
        elif not isinstance(value, kinds):
            problems.append(f"{key}: expected {_names(kinds)}, got {type(value).__name__}")
    return problems


def _names(kinds: Tuple[Any, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def absolute(value: Any) -> Optional[str]:
    """A problem when `value` is not an absolute, normalized target path."""
    if not isinstance(value, str) or not value.startswith("/"):
        return f"expected an absolute path, got {value!r}"
    if os.path.normpath(value) != value or "\n" in value:
        return f"{value!r} is not a normalized path"
    return None
