"""Setting shell variables in vmcatcher's environment file, keeping every other line.

The file is sourced by a shell before vmcatcher runs (the cron job does
`. /etc/sysconfig/vmcatcher; vmcatcher_subscribe -U; vmcatcher_image -U;
vmcatcher_cache -v -v`), so a line is `NAME="value"` or `export NAME="value"`.
A variable already set keeps its place, indentation and `export`; its later
duplicates are dropped (the shell would let the last one win). A missing
variable is appended as `export NAME="value"`, after one comment line.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple

COMMENT = "# Set by satchel (install vmcatcher register): OpenNebula image handler\n"
_ASSIGN = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")


def render(old: str, variables: Sequence[Tuple[str, str]]) -> str:
    """The file `old` with `variables` ((name, value), in order) set.

    Values are written between double quotes and must not hold `"`, `$`, `` ` ``,
    `\\` or newlines (the caller checks them).
    """
    wanted: Dict[str, str] = dict(variables)
    seen: Dict[str, bool] = {}
    out: List[str] = []
    for line in old.splitlines(keepends=True):
        m = _ASSIGN.match(line)
        name = m.group("name") if m else ""
        if not m or name not in wanted:
            out.append(line)
            continue
        if seen.get(name):
            continue  # a duplicate: the first occurrence holds the value now
        seen[name] = True
        ending = "\n" if line.endswith("\n") else ""
        out.append(f'{m.group("lead")}{name}="{wanted[name]}"{ending}')
    missing = [(n, v) for n, v in variables if not seen.get(n)]
    if missing:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(COMMENT)
        out.extend(f'export {n}="{v}"\n' for n, v in missing)
    return "".join(out)
