"""The benchmark's jobs: satchel and the hand-scripted baseline, on the same inputs.

A job is one function `xxx_job(bench) -> Job` listed in JOBS, in the order they
run (a later job may use what an earlier one left: verify reads the bundle of
build's last satchel run). Adding the import job is adding `import_job` below
(sketched at the end of this file) to JOBS.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.generate import SDE, Database, Node
from tests.bench.measure import Command

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass
class Bench:
    """Everything the jobs of one scale share."""

    node: Node
    db: Database
    work: Path  # a fresh directory under /tmp for this scale

    @property
    def bundle(self) -> Path:
        """The satchel bundle: the output of build's satchel side."""
        return self.work / "satchel" / "bundle"

    @property
    def python(self) -> str:
        return str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))


@dataclass(frozen=True)
class Job:
    name: str
    satchel: Command
    baseline: Command
    what: str  # one line: what the two sides do


def write_recipe(bench: Bench) -> Path:
    cluster = bench.db.cluster
    lines = [
        "[bundle]", 'name = "bench"', 'version = "1"', 'distro = "rhel"',
        'distro_version = "9"', f"source_date_epoch = {SDE}",
        "[packages]", 'include = ["bench-*"]', f"sources = [{json.dumps(str(bench.node.rpm_dir))}]",
        "[[files]]", 'name = "config"', f"root = {json.dumps(str(bench.node.tree))}",
        'paths = ["etc"]',
        "[database]", f"names = [{json.dumps(bench.db.name)}]",
        f"host = {json.dumps(cluster.host)}", f"port = {cluster.port}",
        f"user = {json.dumps(cluster.superuser)}",
        f"passfile = {json.dumps(str(cluster.passfile))}", "",
    ]
    path = bench.work / "recipe.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# One shell, one command after the other, as an admin would script it. Paths come
# in through the environment (no quoting trouble); the password through PGPASSFILE.
BASELINE_BUILD = """\
set -e
mkdir -p "$OUT/repo/Packages"
tar -I 'zstd -T0' -cpf "$OUT/files.tar.zst" -C "$TREE" etc
cp -p "$RPMS"/*.rpm "$OUT/repo/Packages/"
createrepo_c --quiet --no-database "$OUT/repo"
"$PGBIN/pg_dump" -Fc -f "$OUT/$DB.dump" "$DB"
"""


def build_job(bench: Bench) -> Job:
    recipe = write_recipe(bench)
    satchel_out = bench.bundle
    baseline_out = bench.work / "baseline" / "out"
    satchel_out.parent.mkdir(parents=True, exist_ok=True)
    baseline_out.parent.mkdir(parents=True, exist_ok=True)
    env = {**bench.db.env(), "OUT": str(baseline_out), "TREE": str(bench.node.tree),
           "RPMS": str(bench.node.rpm_dir), "DB": bench.db.name,
           "PGBIN": str(bench.db.cluster.bindir)}
    return Job(
        name="build",
        satchel=Command([bench.python, str(REPO / "build.py"), "build", str(recipe),
                         "--out", str(satchel_out)], cwd=REPO, outputs=(satchel_out,)),
        baseline=Command(["sh", "-c", BASELINE_BUILD], env=env, outputs=(baseline_out,)),
        what="build.py build  vs  tar -I 'zstd -T0' + cp + createrepo_c --no-database "
             "+ pg_dump -Fc",
    )


def _sha256sum(bench: Bench) -> Command:
    return Command(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bench.bundle)


def verify_job(bench: Bench) -> Job:
    return Job(
        name="verify",
        satchel=Command([str(SYSTEM_PYTHON), "-I", "-S", str(bench.bundle / "install"),
                         "verify", str(bench.bundle)]),
        baseline=_sha256sum(bench),
        what="./install verify (/usr/bin/python3 -I -S)  vs  sha256sum -c SHA256SUMS",
    )


def verify_builder_job(bench: Bench) -> Job:
    return Job(
        name="verify-builder",
        satchel=Command([bench.python, str(REPO / "build.py"), "verify", str(bench.bundle)],
                        cwd=REPO),
        baseline=_sha256sum(bench),
        what="build.py verify  vs  sha256sum -c SHA256SUMS",
    )


# The import job, to add when `install import` lands (then list it in JOBS):
#
# def import_job(bench: Bench) -> Job:
#     root = bench.work / "import-root"              # both sides: a fresh root, and a
#     target db on the same cluster (dropped between runs: give Command a `reset`
#     callable, run untimed before each run, beside the removal of `outputs`).
#     satchel:  install import --root ROOT (bundle's own installer, system python3)
#     baseline: sh -c 'cd "$B" && sha256sum --quiet -c SHA256SUMS
#               && dnf -y --installroot "$ROOT" --disablerepo="*" \
#                      --repofrompath bench,"$B/repo" --enablerepo=bench install "bench-*"
#               && tar -xpf "$BASE/files.tar.zst" -C "$ROOT"
#               && pg_restore -j 2 -d "$TARGETDB" "$BASE/bench.dump"'
#     (the baseline's inputs are build's baseline outputs under work/baseline/out).

JOBS: list[Callable[[Bench], Job]] = [build_job, verify_job, verify_builder_job]


def clean(paths: tuple[Path, ...]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
