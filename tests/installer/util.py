"""Helpers for the engine tests: plugin files in tmp dirs, tree snapshots."""

from __future__ import annotations

import io
import pathlib
import textwrap
from typing import Any, Dict, Tuple

from installer import engine
from tests.treesnap import tree

ENGINE_DIRS = ("var/lib/satchel", "var/log/satchel")


def write_plugin(directory: pathlib.Path, name: str, code: str) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return directory


def snapshot(root: pathlib.Path) -> Dict[str, Tuple[Any, ...]]:
    """Every path under root with type, content (or link target), mode, uid, gid;
    the engine's own state and log directories are left out (state.json is kept)."""
    return tree(root, lambda rel: rel.startswith(ENGINE_DIRS)
                and rel != "var/lib/satchel/state.json")


def run(action: str = "test", **kw: Any) -> Tuple[int, engine.Runner, str]:
    """Run in-process with no built-in groups unless given; returns (code, runner, out)."""
    kw.setdefault("groups", ())
    kw.setdefault("unattended", True)
    out = io.StringIO()
    kw.setdefault("stdout", out)
    kw.setdefault("stderr", out)
    kw.setdefault("stdin", io.StringIO(""))
    runner = engine.Runner(action, **kw)
    code = runner.run()
    return code, runner, out.getvalue()
