"""manifest.json and SHA256SUMS, written last.

SHA256SUMS lists every file of the bundle (the installer included) in the
`sha256sum -c` format; the manifest lists them again with sizes, holds every
component's section, and names SHA256SUMS' own sha256, so the manifest vouches
for everything. Both are deterministic: sorted keys and paths, no volatile data
beyond the source date.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from bundler.components import BuildContext
from installer import BUNDLE_FORMAT, VERSION
from installer.bundle import MANIFEST, META_FILES, SUMS


def write(ctx: BuildContext, components: dict[str, Any], build_host: str) -> dict[str, Any]:
    entries = sorted((e for p, e in ctx.staging.entries.items() if p not in META_FILES),
                     key=lambda e: e.path)
    sums = "".join(f"{e.sha256}  {e.path}\n" for e in entries).encode()
    with ctx.staging.open(SUMS) as out:
        out.write(sums)
    b = ctx.recipe.bundle
    manifest = {
        "format": BUNDLE_FORMAT,
        "satchel_version": VERSION,
        "recipe": {"name": b.name, "version": b.version, "label": b.label},
        "build": {
            "host": build_host,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ctx.source_date_epoch)),
            "source_date_epoch": ctx.source_date_epoch,
        },
        "target": {"distro": b.distro, "version": b.distro_version, "arch": b.arch},
        "components": components,
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in entries],
        "sha256sums": hashlib.sha256(sums).hexdigest(),
    }
    # Compact: the manifest lists every file of every set (indentation made it 23%
    # larger and forced json's slow pure-Python encoder); `inspect` shows it readably.
    data = (json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n").encode()
    with ctx.staging.open(MANIFEST) as out:
        out.write(data)
    return manifest
