"""The benchmark's jobs: satchel and the hand-scripted baseline, on the same inputs.

A job is one function `xxx_job(bench) -> Job` listed in JOBS, in the order they
run (a later job may use what an earlier one left: verify and import read the
outputs of build's last runs, on both sides). What a job needs beyond the node
(a source root, the import's target server) is made when the job is made, outside
the timed part; what must be fresh for every run (a target root and database) is
made by the Command's `reset`, untimed too. Servers a job starts are stopped
through `bench.resources`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.bench import roots
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
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # The import's target server, started early by run.py (else by the import job).
    target: Optional[roots.TargetServer] = None

    @property
    def bundle(self) -> Path:
        """The satchel bundle: the output of build's satchel side."""
        return self.work / "satchel" / "bundle"

    @property
    def baseline_out(self) -> Path:
        """The baseline's bundle: files.tar.zst, repo/, <db>.dump (build's baseline)."""
        return self.work / "baseline" / "out"

    @property
    def python(self) -> str:
        return str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))


@dataclass(frozen=True)
class Job:
    name: str
    satchel: Command
    baseline: Command
    what: str  # one line: what the two sides do
    bundles: bool = False  # both sides write a bundle: compare their sizes


def write_recipe(bench: Bench, path: Path, *, tree: Optional[Path]) -> Path:
    """The node's recipe: its RPMs, its config tree (`tree`; None for a snapshot,
    which reads it from --source-root), its database. The RPMs are unsigned: the
    import must accept them."""
    cluster = bench.db.cluster
    root = [] if tree is None else [f"root = {json.dumps(str(tree))}"]
    lines = [
        "[bundle]", 'name = "bench"', 'version = "1"', 'distro = "rhel"',
        'distro_version = "9"', f"source_date_epoch = {SDE}",
        "[packages]", 'include = ["bench-*"]', "allow_unsigned = true",
        f"sources = [{json.dumps(str(bench.node.rpm_dir))}]",
        "[[files]]", 'name = "config"', *root, 'paths = ["etc"]',
        "[database]", f"names = [{json.dumps(bench.db.name)}]",
        f"host = {json.dumps(cluster.host)}", f"port = {cluster.port}",
        f"user = {json.dumps(cluster.superuser)}",
        f"passfile = {json.dumps(str(cluster.passfile))}", "",
    ]
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


def _baseline_build(bench: Bench, tree: Path, out: Path) -> Command:
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**bench.db.env(), "OUT": str(out), "TREE": str(tree),
           "RPMS": str(bench.node.rpm_dir), "DB": bench.db.name,
           "PGBIN": str(bench.db.cluster.bindir)}
    return Command(["sh", "-c", BASELINE_BUILD], env=env, outputs=(out,))


def build_job(bench: Bench) -> Job:
    recipe = write_recipe(bench, bench.work / "recipe.toml", tree=bench.node.tree)
    satchel_out = bench.bundle
    satchel_out.parent.mkdir(parents=True, exist_ok=True)
    return Job(
        name="build",
        satchel=Command([bench.python, str(REPO / "build.py"), "build", str(recipe),
                         "--out", str(satchel_out)], cwd=REPO, outputs=(satchel_out,)),
        baseline=_baseline_build(bench, bench.node.tree, bench.baseline_out),
        what="build.py build  vs  tar -I 'zstd -T0' + cp + createrepo_c --no-database "
             "+ pg_dump -Fc",
        bundles=True,
    )


def snapshot_job(bench: Bench) -> Job:
    """A node installed with dnf (rpmdb, /opt/bench) holding the config tree in etc/:
    `build.py snapshot` reads the rpmdb, finds the RPMs, checks every packaged file
    for changes, archives etc/ and dumps the database; the baseline is build's."""
    where = bench.work / "snapshot"
    node = roots.source_root(where / "node", bench.node)
    recipe = write_recipe(bench, where / "recipe.toml", tree=None)
    satchel_out = where / "satchel" / "bundle"
    satchel_out.parent.mkdir(parents=True)
    return Job(
        name="snapshot",
        satchel=Command([bench.python, str(REPO / "build.py"), "snapshot", str(recipe),
                         "--source-root", str(node), "--out", str(satchel_out)],
                        cwd=REPO, outputs=(satchel_out,)),
        baseline=_baseline_build(bench, node, where / "baseline" / "out"),
        what="build.py snapshot of a dnf-installed root  vs  tar -I 'zstd -T0' of its "
             "etc + cp + createrepo_c --no-database + pg_dump -Fc",
        bundles=True,
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


# The hand-scripted import of the baseline's bundle into a fresh root and a fresh
# database: check, install the RPMs from its repo with dnf (the rpmdb where EL has
# it, through HOME's .rpmmacros, as satchel's dnf calls do; dnf's cache, history
# and logs in the root: a --setopt=cachedir would be a path on the host), unpack
# the config tree, create the database and restore it.
BASELINE_IMPORT = """\
set -e
cd "$IN"
sha256sum --quiet -c "$SUMS"
dnf -y -q --installroot="$ROOT" --releasever=9 --setopt=reposdir=/nonexistent \\
    --disablerepo='*' --repofrompath=bench,"file://$IN/repo" --enablerepo=bench \\
    --nogpgcheck --setopt=install_weak_deps=False --setopt=keepcache=False \\
    install 'bench-*'
tar -xpf "$IN/files.tar.zst" -C "$ROOT"
"$PGBIN/createdb" "$DB"
"$PGBIN/pg_restore" -j 2 -d "$DB" "$IN/$DB.dump"
"""


def _checksums(top: Path, out: Path) -> Path:
    """A `sha256sum -c` file for every file under `top` (made untimed: the
    baseline's build would have written it)."""
    lines = []
    for p in sorted(q for q in top.rglob("*") if q.is_file()):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        lines.append(f"{h.hexdigest()}  {p.relative_to(top)}\n")
    out.write_text("".join(lines), encoding="utf-8")
    return out


def import_job(bench: Bench) -> Job:
    """Both sides start from a fresh minimal EL9 root and restore into a fresh
    database on a second cluster (the target's own server); satchel's installer
    runs under the venv's python (it needs psycopg2, which /usr/bin/python3 here
    lacks; on EL9 the bundle's python3-psycopg2 fills that role)."""
    if not (bench.bundle / "install").is_file() or not bench.baseline_out.is_dir():
        raise RuntimeError("the import needs the outputs of the build job")
    where = bench.work / "import"
    server = bench.target
    if server is None:
        server = bench.target = roots.TargetServer(where / "server")
        bench.resources.callback(server.stop)
    server.wait()
    name = bench.db.name
    leftovers = (name, f"{name}__satchel_new", f"{name}__satchel_old")

    def fresh(root: Path) -> Callable[[], None]:
        def reset() -> None:
            server.drop(*leftovers)
            roots.target_root(root)
        return reset

    satchel_root, baseline_root = where / "satchel-root", where / "baseline-root"
    answers = server.answers(where / "answers.conf")
    env = {**server.cluster.env(), "IN": str(bench.baseline_out), "ROOT": str(baseline_root),
           "SUMS": str(_checksums(bench.baseline_out, where / "baseline.sha256")),
           "DB": name, "PGBIN": str(server.cluster.bindir),
           "HOME": str(roots.dnf_home(where / "dnf-home"))}
    return Job(
        name="import",
        satchel=Command([bench.python, str(bench.bundle / "install"), "import",
                         "--root", str(satchel_root), "--unattended", "--answers", str(answers)],
                        outputs=(satchel_root,), reset=fresh(satchel_root)),
        baseline=Command(["sh", "-c", BASELINE_IMPORT], env=env, outputs=(baseline_root,),
                         reset=fresh(baseline_root)),
        what="./install import --root (venv python)  vs  sha256sum -c + dnf --installroot "
             "install + tar -xpf + createdb + pg_restore -j 2",
    )


JOBS: list[Callable[[Bench], Job]] = [build_job, verify_job, verify_builder_job,
                                      snapshot_job, import_job]


def clean(paths: tuple[Path, ...]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
