"""A deterministic synthetic management node for the benchmark, at a scale factor.

`generate(scale)` returns a `Node`: a directory of RPMs built with rpmbuild from
generated spec files, and a tree of config files. Both are pure functions of the
seed and the scale, so they are cached under tests/bench/cache/ (gitignored), keyed
by a digest of the parameters: the second run builds nothing.

`database(node, basedir)` starts a throwaway PostgreSQL (bundler.pgcluster) on
127.0.0.1 and loads a database of the node's size with `generate_series`; it is a
context manager that always stops the cluster.

At scale 1: 30 RPMs (~4 MiB), 150 config files (6 MiB: many small, a few large),
a database with 10 MiB of data. Every figure grows linearly with the scale.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from bundler.pgcluster import Cluster
from bundler.rpmbuild import build_specs

GENERATOR_VERSION = 1  # bump when the output of this module changes
SEED = 20261121
SDE = 1767225600  # 2026-01-01, the source date of every generated thing
CACHE = Path(__file__).resolve().parent / "cache"
DB_NAME = "bench"
MIB = 1 << 20


@dataclass(frozen=True)
class Params:
    """What a scale factor means, in counts and sizes."""

    scale: float
    rpms: int
    rpm_bytes: int  # payload bytes per RPM (before rpm's own compression)
    files: int
    files_bytes: int  # total of the config tree
    db_bytes: int  # target size of the database (pg_database_size, roughly)
    seed: int = SEED

    @classmethod
    def at(cls, scale: float) -> Params:
        return cls(scale=scale,
                   rpms=max(2, round(30 * scale)),
                   rpm_bytes=192 * 1024,
                   files=max(12, round(150 * scale)),
                   files_bytes=max(256 * 1024, round(6 * MIB * scale)),
                   db_bytes=max(MIB, round(10 * MIB * scale)))

    def key(self, what: str) -> str:
        text = json.dumps({"v": GENERATOR_VERSION, "what": what, **asdict(self)},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Node:
    params: Params
    rpm_dir: Path  # *.rpm, flat
    tree: Path  # root of the config tree; the file set's paths are ["etc"]

    def rpm_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.rpm_dir.glob("*.rpm"))

    def tree_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.tree.rglob("*") if p.is_file())


def generate(scale: float, cache: Path = CACHE) -> Node:
    params = Params.at(scale)
    cache.mkdir(parents=True, exist_ok=True)
    return Node(params, _rpms(params, cache), _tree(params, cache))


# -- text that compresses like real configs ---------------------------------------

def _words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(3, 10))) for _ in range(n)]


def config_text(rng: random.Random, size: int, vocab: list[str]) -> bytes:
    """`size` bytes of config-like text: key = value lines, comments, and base64
    blobs (keys, certs) for about a fifth: compresses ~3x with zstd, as /etc does."""
    parts: list[str] = []
    total = 0
    while total < size:
        r = rng.random()
        if r < 0.003:
            blob = base64.encodebytes(rng.randbytes(rng.randint(300, 3000))).decode()
            line = f"-----BEGIN DATA-----\n{blob}-----END DATA-----\n"
        elif r < 0.15:
            line = "# " + " ".join(rng.choices(vocab, k=rng.randint(4, 14))) + "\n"
        elif r < 0.2:
            line = f"\n[{rng.choice(vocab)}.{rng.choice(vocab)}]\n"
        else:
            key = "_".join(rng.choices(vocab, k=rng.randint(1, 3)))
            val = (str(rng.randint(0, 1 << 20)) if rng.random() < 0.4
                   else " ".join(rng.choices(vocab, k=rng.randint(1, 4))))
            line = f"{key} = {val}\n"
        parts.append(line)
        total += len(line)
    return "".join(parts).encode()[:size]


# -- the config tree ----------------------------------------------------------------

def _file_sizes(rng: random.Random, count: int, total: int) -> list[int]:
    """A few large files (40% of the bytes) and many small ones (lognormal)."""
    large = max(1, count // 50)
    small = count - large
    big = [int(total * 0.4 / large)] * large
    raw = [rng.lognormvariate(8.5, 1.0) for _ in range(small)]  # median ~5 KiB
    factor = (total - sum(big)) / sum(raw)
    return [max(1, int(x * factor)) for x in raw] + big


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished cache entry into place; another process may have won."""
    (tmp / ".done").write_text("")
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / ".done").exists():
            raise


def _fresh(final: Path) -> Path:
    """A private directory beside a cache entry, to build it in."""
    shutil.rmtree(final, ignore_errors=True)  # a stale entry from an older layout
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))


def _tree(params: Params, cache: Path) -> Path:
    final = cache / f"tree-{params.key('tree')}"
    if (final / ".done").exists():
        return final / "root"
    root = _fresh(final)
    rng = random.Random(params.seed)
    vocab = _words(rng, 3000)
    sizes = _file_sizes(rng, params.files, params.files_bytes)
    rng.shuffle(sizes)
    top = root / "root" / "etc"
    for i, size in enumerate(sizes):
        d = top / f"app{i % 7}" / f"conf{i // 20:03d}.d"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{rng.choice(vocab)}-{i:05d}.conf"
        path.write_bytes(config_text(rng, size, vocab))
        os.chmod(path, 0o600 if i % 11 == 0 else 0o644)
        os.utime(path, (SDE, SDE))
    (root / "params.json").write_text(json.dumps(asdict(params)) + "\n")
    _publish(root, final)
    return final / "root"


# -- the RPMs ---------------------------------------------------------------------

SPEC = """\
Name:           bench-{n:04d}
Version:        1.{n}
Release:        1
Summary:        satchel benchmark package {n}
License:        MIT
BuildArch:      noarch
AutoReqProv:    no

%description
Synthetic payload for the satchel benchmark.

%prep

%build

%install
mkdir -p %{{buildroot}}/opt/bench/{n:04d}
cp -p %{{_sourcedir}}/*.dat %{{buildroot}}/opt/bench/{n:04d}/

%files
/opt/bench/{n:04d}

%changelog
* Sat Nov 21 2026 satchel <satchel@example.invalid> - 1.{n}-1
- Generated
"""


def _spec_dir(params: Params, specs: Path, n: int) -> Path:
    """A directory with one spec and its payload (build_specs hashes what is beside it)."""
    final = specs / f"bench-{n:04d}"
    if (final / ".done").exists():
        return final / f"bench-{n:04d}.spec"
    specs.mkdir(parents=True, exist_ok=True)
    d = _fresh(final)
    rng = random.Random(params.seed * 100003 + n)
    vocab = _words(rng, 500)
    left, i = params.rpm_bytes, 0
    while left > 0:
        size = min(left, rng.randint(4096, params.rpm_bytes // 2))
        # Binaries compress poorly, text well: half and half.
        data = rng.randbytes(size) if i % 2 else config_text(rng, size, vocab)
        (d / f"part{i}.dat").write_bytes(data)
        left -= size
        i += 1
    (d / f"bench-{n:04d}.spec").write_text(SPEC.format(n=n))
    _publish(d, final)
    return final / f"bench-{n:04d}.spec"


def _rpms(params: Params, cache: Path) -> Path:
    # The RPMs depend only on the per-package parameters: a bigger scale reuses
    # the packages of a smaller one.
    per = Params(scale=0, rpms=0, rpm_bytes=params.rpm_bytes, files=0, files_bytes=0,
                 db_bytes=0, seed=params.seed)
    specs_root = cache / f"specs-{per.key('specs')}"
    built = cache / f"rpms-{per.key('rpms')}"
    out = cache / f"rpmset-{params.key('rpmset')}"
    if (out / ".done").exists():
        return out
    specs = [_spec_dir(params, specs_root, n) for n in range(params.rpms)]
    # rpmbuild is single-threaded and mostly waits on gzip: one batch per core.
    cores = os.cpu_count() or 2
    batches = [specs[i::cores] for i in range(cores)]
    with ThreadPoolExecutor(cores) as pool:
        rpms = [p for part in pool.map(lambda b: build_specs(b, built, SDE), batches)
                for p in part]
    # The set for this scale: hard links into its own flat directory.
    tmp = _fresh(out)
    for p in sorted(rpms):
        os.link(p, tmp / p.name)
    _publish(tmp, out)
    return out


# -- the database -----------------------------------------------------------------

# Measured: ~230 bytes a row (heap + indexes) in events, ~180 in settings; an
# empty database adds ~7.5 MiB of catalogs.
LOAD_SQL = """
CREATE TABLE hosts (id int PRIMARY KEY, name text NOT NULL, added timestamptz NOT NULL);
INSERT INTO hosts SELECT i, 'node' || lpad(i::text, 4, '0') || '.example.invalid',
    timestamptz '2026-01-01' + i * interval '1 hour' FROM generate_series(1, 500) i;
CREATE TABLE events (
    id bigint PRIMARY KEY, host int NOT NULL REFERENCES hosts, at timestamptz NOT NULL,
    kind smallint NOT NULL, state text NOT NULL, detail text NOT NULL);
INSERT INTO events SELECT i, 1 + i % 500, timestamptz '2026-01-01' + i * interval '7 seconds',
    i % 17, (ARRAY['ok','warn','error','unknown'])[1 + i % 4],
    md5(i::text) || ' ' || repeat(chr(97 + i % 26), i % 48) || ' ' || md5((i * 7)::text)
    FROM generate_series(1, {events}) i;
CREATE INDEX events_host_at ON events (host, at);
CREATE TABLE settings (host int NOT NULL REFERENCES hosts, key text NOT NULL,
    value jsonb NOT NULL, PRIMARY KEY (host, key));
INSERT INTO settings SELECT 1 + i % 500, 'key' || (i / 500),
    jsonb_build_object('n', i, 'v', md5(i::text), 'on', i % 2 = 0)
    FROM generate_series(1, {settings}) i;
ANALYZE;
"""


@dataclass(frozen=True)
class Database:
    cluster: Cluster
    name: str
    size: int  # pg_database_size after loading

    def env(self) -> dict[str, str]:
        return self.cluster.env(self.name)


@contextlib.contextmanager
def database(params: Params, basedir: Path | None = None) -> Iterator[Database]:
    """A throwaway cluster under /tmp with the node's database; always stopped."""
    tmp = None
    if basedir is None:
        tmp = tempfile.mkdtemp(prefix="satchel-bench-pg-", dir="/tmp")
        basedir = Path(tmp)
    cluster = Cluster(basedir)
    try:
        cluster.init()
        cluster.start()
        cluster.create_database(DB_NAME)
        events = max(1000, math.ceil(params.db_bytes * 0.8 / 230))
        settings = max(500, math.ceil(params.db_bytes * 0.2 / 180))
        cluster.run_sql(DB_NAME, LOAD_SQL.format(events=events, settings=settings))
        size = cluster.run_sql(DB_NAME, "SELECT pg_database_size(current_database())")[0][0]
        yield Database(cluster, DB_NAME, int(size))
    finally:
        cluster.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
