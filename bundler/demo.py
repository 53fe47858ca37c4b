"""`build.py demo`: the README's main job, on the embedded demo recipe.

Prepares what a real appliance vendor would already have (RPMs built from
payload/demo/*.spec, a self-signed key and cert, a PostgreSQL database loaded with
payload/demo/sql/*.sql in a throwaway cluster that it starts and always stops),
builds recipes/demo.toml into a bundle, verifies it, and shows what is in it.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from bundler import recipe as recipes
from bundler.build import build, cache_dir
from bundler.output import OutputFormat
from bundler.pgcluster import Cluster
from bundler.progress import Progress
from bundler.run import check_tool
from bundler.run import run as run_cmd
from bundler.verify import verify
from installer.bundle import print_summary, summary
from installer.errors import EXIT_FAILED, EXIT_OK

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "demo.toml"
SQL = REPO / "payload" / "demo" / "sql"


def make_pki(root: Path) -> Path:
    """A self-signed key and cert for the demo, made once and then reused (so the
    demo's inputs, and so its bundle, stay the same from run to run)."""
    pki = root / "etc" / "pki" / "demo"
    key, crt = pki / "demo.key", pki / "demo.crt"
    if key.exists() and crt.exists():
        return root
    check_tool("openssl", hint="apt-get install openssl")
    pki.mkdir(parents=True, exist_ok=True)
    tmp_key = pki / ".demo.key.tmp"
    run_cmd(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
         "-subj", "/CN=demo.satchel.invalid/O=satchel demo", "-keyout", tmp_key,
         "-out", crt])
    tmp_key.chmod(0o600)
    tmp_key.rename(key)
    return root


def run_demo(out: Path, fmt: str, progress: Progress) -> Path:
    recipe = recipes.load(RECIPE)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    assert recipe.secrets is not None and recipe.database is not None
    pki_root = make_pki(cache_dir() / "demo" / "pki")
    # A short path under /tmp: a unix socket path must stay under 107 bytes.
    with tempfile.TemporaryDirectory(prefix="satchel-demo-pg-", dir="/tmp") as d:
        with progress.step("starting a throwaway PostgreSQL"):
            cluster = Cluster(Path(d))
            cluster.init()
            cluster.start()
        try:
            with progress.step("loading the demo database"):
                for name in recipe.database.names:
                    cluster.load_sql(name, sorted(SQL.glob("*.sql")))
            recipe = dataclasses.replace(
                recipe,
                secrets=dataclasses.replace(recipe.secrets, root=pki_root),
                database=dataclasses.replace(recipe.database, host=cluster.host,
                                             port=cluster.port, user=cluster.superuser,
                                             passfile=cluster.passfile))
            result = build(recipe, out, OutputFormat(fmt), force=True, progress=progress)
        finally:
            with progress.step("stopping the throwaway PostgreSQL"):
                cluster.stop()
    return result.path


def run(out: Path, fmt: str) -> int:
    progress = Progress()
    path = run_demo(out, fmt, progress)
    report = verify(path)
    from bundler.verify import read_manifest

    print(f"\nThe demo bundle is at {path}\n")
    print_summary(summary(read_manifest(path)))
    print(f"\nverify: {'OK' if report.ok else 'FAILED'} ({report.checked} files)")
    if path.is_dir():
        print(f"next: {path}/install inspect   |   {path}/install import --root DIR")
    sys.stdout.flush()
    return EXIT_OK if report.ok else EXIT_FAILED
