"""The bundle an import runs from: its manifest, read once per run."""

from __future__ import annotations

import pathlib
from typing import Any, Dict, Optional, Tuple

from installer.bundle import load_manifest
from installer.errors import InputError

_cache: Dict[Tuple[str, float], Dict[str, Any]] = {}


def bundle_dir(bundle: Optional[pathlib.Path]) -> pathlib.Path:
    if bundle is None:
        raise InputError("no bundle to import from",
                         hint="run the `install` file of the bundle, or pass --bundle DIR")
    return bundle


def manifest(bundle: Optional[pathlib.Path]) -> Dict[str, Any]:
    root = bundle_dir(bundle)
    key = (str(root), (root / "manifest.json").stat().st_mtime
           if (root / "manifest.json").exists() else 0.0)
    if key not in _cache:
        _cache[key] = load_manifest(root)
    return _cache[key]


def component(bundle: Optional[pathlib.Path], name: str) -> Dict[str, Any]:
    return manifest(bundle).get("components", {}).get(name) or {}
