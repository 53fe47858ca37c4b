"""Multi-volume bundles end to end: one source (demo RPMs, a file set with 400 KiB
of incompressible data, a key, a PostgreSQL database) built as one directory, as
directory volumes and as ISO volumes (--split-size 512K: several volumes, the
dump and the file set in chunks); the ISO images are read with libarchive into
directories standing in for mounted discs. Every volume verifies on its own and
names the others; a flipped byte in a chunk is named; `install import` from the
volumes gives the same root, rpm set and database as from the single directory;
a missing volume is refused, unattended, before any change; a medium too small
writes nothing."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libarchive
import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.dnf import installed, rpm_root
from bundler.media import medium_for, parse_size
from bundler.output import OutputFormat
from bundler.pgcluster import Cluster
from bundler.progress import Progress
from bundler.verify import verify
from installer.restore import volumes
from installer.restore.pgfacts import table_facts
from tests.rpmfixtures import demo_rpms
from tests.treesnap import tree

__all__ = ["demo_rpms"]

pytestmark = [pytest.mark.rpm, pytest.mark.root, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
SPLIT = "512K"
OS_RELEASE = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel"\nVERSION_ID="9.4"\n'

RECIPE = """
[bundle]
name = "vols"
version = "1"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
label = "VOLS"
source_date_epoch = 1767225600

[packages]
include = ["demo-app"]
sources = ["rpms", "base"]
base = ["demo-base"]
allow_unsigned = true

[[files]]
name = "config"
root = "tree"
paths = ["etc/demo", "var/lib/demo"]

[secrets]
root = "pki"
paths = ["etc/pki/demo"]
{database}
"""

SQL = """
CREATE TABLE public.notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO notes SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 9000) g;
ALTER TABLE notes OWNER TO {role};
"""


@dataclasses.dataclass
class Sets:
    single: Path  # the bundle as one directory
    dirs: list[Path]  # directory volumes
    isos: list[Path]  # ISO volumes
    discs: list[Path]  # the ISO volumes read into directories
    db: str
    role: str
    tables: dict[str, Any]


def _source(where: Path, rpms: Path) -> Path:
    (where / "rpms").mkdir(parents=True)
    (where / "base").mkdir()
    for f in rpms.glob("*.rpm"):
        if not f.name.startswith("demo-extra"):
            shutil.copy(f, where / ("base" if f.name.startswith("demo-base") else "rpms"))
    tree_dir = where / "tree"
    shutil.copytree(REPO / "payload/demo/files", tree_dir)
    (tree_dir / "var/lib/demo/blob.bin").write_bytes(random.Random(5).randbytes(400 << 10))
    pki = where / "pki/etc/pki/demo"
    pki.mkdir(parents=True)
    (pki / "demo.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n")
    os.chmod(pki / "demo.key", 0o600)
    return where


def _recipe(where: Path, cluster: Cluster, db: str) -> recipes.Recipe:
    text = RECIPE.format(database=f'[database]\nnames = ["{db}"]\nroles = true\n')
    (where / "r.toml").write_text(text)
    r = recipes.load(where / "r.toml")
    assert r.database is not None
    return dataclasses.replace(r, database=dataclasses.replace(
        r.database, host=cluster.host, port=cluster.port, user=cluster.superuser,
        passfile=cluster.passfile))


def _read_iso(image: Path, into: Path) -> Path:
    """An ISO image read with libarchive into a directory: a mounted disc."""
    into.mkdir()
    with contextlib.chdir(into):
        libarchive.extract_file(str(image))
    return into


@pytest.fixture(scope="module")
def sets(pg_cluster: Cluster, demo_rpms: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sets]:
    where = _source(tmp_path_factory.mktemp("src"), demo_rpms)
    hexid = uuid.uuid4().hex[:8]
    db, role = f"vols_{hexid}", f"volsapp_{hexid}"
    pg_cluster.run_sql("postgres", f"CREATE ROLE {role} LOGIN")
    pg_cluster.create_database(db, owner=role)
    pg_cluster.run_sql(db, SQL.format(role=role))
    r = _recipe(where, pg_cluster, db)
    quiet = Progress(quiet=True)
    single = build(r, where / "single", OutputFormat.dir, progress=quiet)
    split = parse_size(SPLIT)
    dirs = build(r, where / "dirs", OutputFormat.dir, progress=quiet,
                 medium=medium_for(None, split, iso=False))
    isos = build(r, where / "set", OutputFormat.iso, progress=quiet,
                 medium=medium_for(None, split, iso=True))
    out = tmp_path_factory.mktemp("discs")
    discs = [_read_iso(p, out / f"disc{n}") for n, p in enumerate(isos.volumes, 1)]
    tables = single.manifest["components"]["database"]["databases"][0]["tables"]
    _drop(pg_cluster, db, role)
    try:
        yield Sets(single.path, list(dirs.volumes), list(isos.volumes), discs, db, role,
                   tables)
    finally:
        _drop(pg_cluster, db, role)


def _drop(cluster: Cluster, db: str, role: str) -> None:
    cluster.drop_database(db)
    cluster.run_sql("postgres", f"DROP ROLE IF EXISTS {role}")


def _volume_doc(path: Path) -> dict[str, Any]:
    return json.loads((path / "volume.json").read_text())


def test_the_sets_have_several_self_describing_volumes_and_chunks(sets: Sets) -> None:
    for vols, kind in ((sets.dirs, "dir"), (sets.discs, "iso")):
        assert len(vols) >= 3, kind
        manifest = (sets.dirs[0] / "manifest.json").read_bytes()
        docs = [_volume_doc(v) for v in vols]
        for n, (v, doc) in enumerate(zip(vols, docs), 1):
            assert {"install", "manifest.json", "SHA256SUMS", "volume.json"} <= \
                {p.name for p in v.iterdir()}, v
            assert (doc["volume"], doc["volumes"], doc["label"]) == (n, len(vols), f"VOLS_{n}")
            assert os.access(v / "install", os.X_OK)
            if kind == "dir":
                assert (v / "manifest.json").read_bytes() == manifest
        chunked = {c["file"] for d in docs for c in d["chunks"]}
        dump = f"db/{sets.db}.dump.zst"
        assert {dump, "files/config.tar.zst"} <= chunked, chunked
        assert all(d["set"] == docs[0]["set"] for d in docs)
        rpms = [f["path"] for d in docs for f in d["files"] if f["path"].endswith(".rpm")]
        assert len(rpms) == 3  # whole, read by dnf in place
    assert [p.name for p in sets.isos] == [f"set.vol{n}.iso" for n in
                                           range(1, len(sets.isos) + 1)]
    assert all(p.stat().st_size <= parse_size(SPLIT) for p in sets.isos)
    assert [p.name for p in sets.dirs] == [f"dirs.vol{n}" for n in range(1, len(sets.dirs) + 1)]


def test_build_verify_checks_each_volume_and_names_the_ones_still_needed(sets: Sets) -> None:
    for vols in (sets.dirs, sets.isos, sets.discs):
        whole = verify(*vols)
        assert whole.ok and whole.chunked_checked >= 2, whole.lines()  # type: ignore
        for n, v in enumerate(vols, 1):
            one = verify(v)
            assert one.ok, one.lines()
            assert one.needed == [m for m in range(1, len(vols) + 1) if m != n]  # type: ignore
    r = subprocess.run([sys.executable, str(REPO / "build.py"), "verify", str(sets.isos[1])],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "still needed: volume 1 (VOLS_1)" in r.stdout


def test_install_verify_on_a_volume_names_the_volumes_still_needed(sets: Sets) -> None:
    disc = sets.discs[1]
    r = subprocess.run(["/usr/bin/python3", str(disc / "install"), "verify"],
                       capture_output=True, text=True, cwd=disc)
    assert r.returncode == 0, r.stderr
    assert "OK: volume 2 (VOLS_2)" in r.stdout
    assert "still needed: volume 1 (VOLS_1), volume 3 (VOLS_3)" in r.stdout
    r = subprocess.run(["/usr/bin/python3", str(disc / "install"), "verify",
                        *map(str, sets.discs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "is complete" in r.stdout


def _root(where: Path, rpms: Path) -> Path:
    root = where / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    rpm_root(root, ["-i", "--nodeps", str(next(rpms.glob("demo-base-*.rpm")))])
    return root


def _import(cluster: Cluster, bundle: Path, root: Path, *extra: str
            ) -> subprocess.CompletedProcess[str]:
    """`install import` with this Python (it has psycopg2), from the source tree."""
    pw = root.parent / "dbpass"
    if not pw.exists():
        line = cluster.passfile.read_text().splitlines()[0]
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(line.split(":", 4)[4] + "\n")
    return subprocess.run(
        [sys.executable, "-m", "installer", "import", "--bundle", str(bundle),
         "--root", str(root), "--unattended", "--set", f"DB/host={cluster.host}",
         "--set", f"DB/port={cluster.port}", "--set", f"DB/user={cluster.superuser}",
         "--set", f"DB/passwordFile={pw}", *extra],
        capture_output=True, text=True, cwd=REPO, timeout=600)


def _result(root: Path, cluster: Cluster, db: str) -> tuple[Any, ...]:
    files = tree(root, lambda rel: rel.startswith((
        "var/log", "var/lib/rpm", "var/lib/dnf", "var/cache", "var/lib/satchel")))
    conn = cluster.connect(db, autocommit=False)
    try:
        facts = table_facts(conn)
    finally:
        conn.close()
    return files, installed(root), facts


def test_import_from_volumes_gives_what_the_single_directory_gives(
        sets: Sets, pg_cluster: Cluster, demo_rpms: Path, tmp_path: Path) -> None:
    results = []
    for name, vols in (("single", [sets.single]), ("dirs", sets.dirs),
                       ("discs", sets.discs)):
        root = _root(tmp_path / name, demo_rpms)
        first, *others = vols[::-1]  # start from the last volume: any one will do
        extra = [a for v in others for a in ("--volume", str(v))]
        r = _import(pg_cluster, first, root, *extra)
        assert r.returncode == 0, (name, r.stdout + r.stderr)
        if name != "single":
            assert "bundle verified" in r.stdout + r.stderr
        results.append(_result(root, pg_cluster, sets.db))
        _drop(pg_cluster, sets.db, sets.role)
    single, dirs, discs = results
    assert single[2] == sets.tables
    assert (root / "var/lib/demo/blob.bin").stat().st_size == 400 << 10
    assert dirs == single
    assert discs == single
    assert not list(Path("/tmp").glob(f"satchel-volumes-*/db/{sets.db}.dump*"))


def test_a_flipped_byte_in_a_chunk_is_named_and_the_import_refused(
        sets: Sets, pg_cluster: Cluster, demo_rpms: Path, tmp_path: Path) -> None:
    copies = [Path(shutil.copytree(v, tmp_path / v.name)) for v in sets.dirs]
    doc = _volume_doc(copies[1])
    chunk = doc["chunks"][0]["path"]
    data = bytearray((copies[1] / chunk).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copies[1] / chunk).write_bytes(bytes(data))
    report = verify(*copies)
    assert not report.ok
    assert any(chunk in line and "VOLS_2" in line for line in report.altered), report.lines()
    r = subprocess.run(["/usr/bin/python3", str(copies[1] / "install"), "verify"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and chunk in r.stderr
    root = _root(tmp_path / "t", demo_rpms)
    before = tree(root)
    r = _import(pg_cluster, copies[0], root, "--volume", str(copies[1]),
                "--volume", str(copies[2]), *[a for c in copies[3:] for a in ("--volume",
                                                                             str(c))])
    assert r.returncode == 2, r.stdout + r.stderr
    assert chunk in r.stderr and "nothing was changed" in r.stderr
    assert {k: v for k, v in tree(root).items() if not k.startswith("var")} == \
        {k: v for k, v in before.items() if not k.startswith("var")}
    assert installed(root) == [n for n in installed(root) if n.startswith("demo-base")]
    assert not pg_cluster.run_sql("postgres",
                                  f"SELECT 1 FROM pg_database WHERE datname = '{sets.db}'")


def test_a_missing_volume_unattended_is_refused_naming_it_before_any_change(
        sets: Sets, pg_cluster: Cluster, demo_rpms: Path, tmp_path: Path) -> None:
    root = _root(tmp_path, demo_rpms)
    before = tree(root)
    r = _import(pg_cluster, sets.discs[0], root, "--volume", str(sets.discs[2]))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "missing: volume 2 (VOLS_2)" in r.stderr
    assert tree(root) == before  # not even a log: refused before the run started
    r = _import(pg_cluster, sets.single, root, "--volume", str(sets.discs[0]))
    assert r.returncode == 2 and "single-volume bundle" in r.stderr


def test_asked_for_the_next_volume_when_interactive(sets: Sets, tmp_path: Path) -> None:
    asked: list[str] = []
    said: list[str] = []
    answers = iter([str(sets.discs[2]), str(tmp_path), *map(str, sets.discs[1:])])

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    got = volumes.collect(sets.discs[0], ask=ask, say=said.append)
    assert [v.number for v in got] == list(range(1, len(sets.discs) + 1))
    assert asked[0] == (f"insert volume 2 of {len(sets.discs)} (label VOLS_2) and give its "
                        "mount point (empty to stop): ")
    assert "this is volume 3 (VOLS_3), not volume 2" in said[0]
    assert "not a volume" in said[1]
    with pytest.raises(Exception, match=r"missing: volume 2 \(VOLS_2\), volume 3"):
        volumes.collect(sets.discs[0], ask=lambda prompt: "")
    with pytest.raises(Exception, match="belongs to another set"):
        volumes.collect(sets.discs[0], [sets.dirs[1]])


def test_a_medium_too_small_is_refused_and_nothing_is_written(tmp_path: Path,
                                                             demo_rpms: Path) -> None:
    where = _source(tmp_path / "src", demo_rpms)
    (where / "r.toml").write_text(RECIPE.format(database=""))
    out = tmp_path / "out"
    out.mkdir()
    for args in (["--split-size", "200K"], ["--split-size", "200K", "--format", "iso"],
                 ["--medium", "dvd", "--format", "tar"]):
        r = subprocess.run([sys.executable, str(REPO / "build.py"), "build",
                            str(where / "r.toml"), "--out", str(out / "b"), *args],
                           capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert list(out.iterdir()) == [], args  # no volume, no staging left
    assert "too small" in r.stderr or "dir or" in r.stderr
    r = subprocess.run([sys.executable, str(REPO / "build.py"), "build",
                        str(where / "r.toml"), "--out", str(out / "b"), "--split-size", "200K"],
                       capture_output=True, text=True)
    assert "is too small" in r.stderr and "installer" in r.stderr
    r = subprocess.run([sys.executable, str(REPO / "build.py"), "build",
                        str(where / "r.toml"), "--out", str(out / "b"), "--medium", "usb"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _volume_doc(out / "b")["volumes"] == 1  # one volume: today's layout + volume.json
    r = subprocess.run([sys.executable, str(REPO / "build.py"), "build",
                        str(where / "r.toml"), "--out", str(out / "b"), "--medium", "usb"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr
