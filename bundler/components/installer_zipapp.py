"""The installer, packed as one executable file: `install` (a Python zipapp).

Reproducible: members sorted, every timestamp set to the source date (zip cannot
go before 1980), fixed permissions, no __pycache__. The interpreter line names
the target's system python3, as on EL9.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import installer
from bundler.components import BuildContext

INTERPRETER = b"#!/usr/bin/python3\n"
MAIN = b"""import sys

from installer.cli import main

sys.exit(main())
"""
ZIP_EPOCH = 315532800  # 1980-01-01, the earliest date a zip entry can hold


def sources() -> list[Path]:
    pkg = Path(installer.__file__).parent
    return sorted(p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix in (".py", ".sql", ".tmpl", ".txt"))


def _info(name: str, when: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, time.gmtime(max(when, ZIP_EPOCH))[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.create_system = 3  # unix
    return info


def build(ctx: BuildContext) -> dict[str, Any]:
    pkg = Path(installer.__file__).parent
    files = sources()
    buf = io.BytesIO()
    buf.write(INTERPRETER)
    with ctx.progress.step("packing the installer", total=len(files)) as p:
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(_info("__main__.py", ctx.source_date_epoch), MAIN)
            for f in files:
                name = "installer/" + f.relative_to(pkg).as_posix()
                z.writestr(_info(name, ctx.source_date_epoch), f.read_bytes())
                p.advance(1, name)
        with ctx.staging.open("install", mode=0o755) as out:
            out.write(buf.getvalue())
    return {"file": "install", "version": installer.VERSION, "modules": len(files),
            "python": ">=3.9"}
