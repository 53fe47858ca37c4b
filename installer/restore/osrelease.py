"""The target's identity (`<root>/etc/os-release`, the machine's arch) and the
compatibility gate against a bundle's manifest."""

from __future__ import annotations

import platform
import shlex
from pathlib import Path
from typing import Any, Dict, List

from installer.errors import InputError


def read(root: Path) -> Dict[str, str]:
    """Parse os-release (the root's /etc/os-release, else /usr/lib/os-release)."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        path = root / rel
        if path.exists():
            break
    else:
        raise InputError(f"{root}: no etc/os-release: cannot tell which distro this is",
                         hint="is --root the root of an installed system?")
    values: Dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            continue
        values[key.strip()] = parts[0] if parts else ""
    return values


def ids(osr: Dict[str, str]) -> List[str]:
    """ID first, then each ID_LIKE entry ("rocky" is also "rhel" and "centos")."""
    out = [osr.get("ID", ""), *osr.get("ID_LIKE", "").split()]
    return [i for i in out if i]


def major(version: str) -> str:
    return version.split(".", 1)[0]


def machine_arch() -> str:
    return platform.machine()


def compatibility_problems(target: Dict[str, Any], root: Path) -> List[str]:
    """Each mismatch between the manifest's target and this root, naming both values."""
    osr = read(root)
    problems = []
    want_id = target.get("distro", "")
    have = ids(osr)
    if want_id not in have:
        problems.append(f"distro: the bundle is for {want_id!r}, this root is "
                        f"{osr.get('ID', '?')!r}" +
                        (f" (like {' '.join(have[1:])})" if len(have) > 1 else ""))
    want_ver = major(str(target.get("version", "")))
    have_ver = major(osr.get("VERSION_ID", ""))
    if want_ver != have_ver:
        problems.append(f"distro version: the bundle is for {want_ver!r}, this root is "
                        f"{have_ver or '?'!r}")
    want_arch = target.get("arch", "")
    have_arch = machine_arch()
    if want_arch not in ("noarch", have_arch):
        problems.append(f"architecture: the bundle is for {want_arch}, this machine is "
                        f"{have_arch}")
    return problems
