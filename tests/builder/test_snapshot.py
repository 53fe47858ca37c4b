"""The snapshot round trip: a node made with dnf from the demo packages, with an
edited %config file, unpackaged files and a key pair, is captured by
`build.py snapshot` and brought back by `install import` into a fresh root; the
package set and every captured file (content, mode, owner) are the same.
(With a database too: test_snapshot_db.py.) Owners of a prepared source root are
named by that root's own passwd and group, never the build host's."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import libarchive
import pytest

from bundler import recipe as recipes
from bundler.archive import read_entries
from bundler.dnf import dnf_installroot, installed, rpm_root
from bundler.media import medium_for, parse_size
from bundler.output import OutputFormat
from bundler.progress import Progress
from bundler.snapshot import snapshot
from installer.errors import InputError
from tests.rpmfixtures import demo_rpms  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
OS_RELEASE = 'ID="rhel"\nVERSION_ID="9.4"\n'

RECIPE = """
[bundle]
name = "node"
version = "1"
distro = "rhel"
distro_version = "9"
source_date_epoch = 1767225600

[packages]
everything = true
base = ["demo-base"]
sources = ["{rpms}"]
allow_unsigned = true

[[files]]
name = "etc"
paths = ["etc/demo"]

[[files]]
name = "data"
paths = ["srv/demo"]
exclude = ["*.tmp"]

[secrets]
paths = ["etc/pki/demo"]
"""

pytestmark = [pytest.mark.root]


def _base_root(root: Path, rpms: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/x\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    rpm_root(root, ["-i", "--nodeps", str(next(rpms.glob("demo-base-*.rpm")))])
    return root


@pytest.fixture
def node(tmp_path: Path, demo_rpms: Path) -> Path:  # noqa: F811
    """A source node: demo-app installed with dnf, then lived in."""
    root = _base_root(tmp_path / "node", demo_rpms)
    repo = tmp_path / "repo"
    repo.mkdir()
    for f in demo_rpms.glob("demo-*.rpm"):
        shutil.copy(f, repo)
    subprocess.run(["createrepo_c", "-q", str(repo)], check=True)
    dnf_installroot(root, repo, ["install", "demo-app"])
    (root / "etc/demo/app.conf").write_text("# edited on the node\nport = 9090\n")
    (root / "etc/demo/local.conf").write_text("local = yes\n")  # unpackaged
    data = root / "srv/demo"
    data.mkdir(parents=True)
    (data / "records.db").write_bytes(os.urandom(200_000))
    (data / "scratch.tmp").write_text("excluded")
    os.chown(data / "records.db", 65534, 65534)
    os.chmod(data / "records.db", 0o640)
    pki = root / "etc/pki/demo"
    pki.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=node", "-keyout", str(pki / "node.key"),
                    "-out", str(pki / "node.crt")], check=True, capture_output=True)
    os.chmod(pki / "node.key", 0o600)
    return root


def _recipe(tmp_path: Path, rpms: Path) -> recipes.Recipe:
    path = tmp_path / "node.toml"
    path.write_text(RECIPE.format(rpms=rpms))
    return recipes.load(path)


def _file_facts(root: Path, rels: list[str]) -> dict[str, tuple[object, ...]]:
    out = {}
    for rel in rels:
        p = root / rel
        st = os.lstat(p)
        out[rel] = (st.st_mode, st.st_uid, st.st_gid,
                    hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
    return out


@pytest.mark.rpm
def test_snapshot_round_trip(node: Path, tmp_path: Path, demo_rpms: Path) -> None:  # noqa: F811
    bundle = snapshot(_recipe(tmp_path, demo_rpms), node, tmp_path / "bundle",
                      OutputFormat.dir, progress=Progress(quiet=True)).path
    manifest_text = (bundle / "manifest.json").read_text()
    assert "srv/demo/scratch.tmp" not in manifest_text
    # Packaged, unchanged files stay with their packages; changed ones are captured.
    assert "etc/demo/app.conf" in manifest_text and "etc/demo/local.conf" in manifest_text

    target = _base_root(tmp_path / "target", demo_rpms)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run([python, str(bundle / "install"), "import", "--root", str(target),
                        "--unattended"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    assert installed(target) == installed(node)
    rels = ["etc/demo/app.conf", "etc/demo/local.conf", "srv/demo/records.db",
            "etc/pki/demo/node.key", "etc/pki/demo/node.crt", "usr/bin/demo-app"]
    assert _file_facts(target, rels) == _file_facts(node, rels)
    assert not (target / "srv/demo/scratch.tmp").exists()


@pytest.mark.rpm
def test_missing_rpms_are_listed_at_once(node: Path, tmp_path: Path,
                                         demo_rpms: Path) -> None:  # noqa: F811
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in demo_rpms.glob("demo-*.rpm"):
        if not f.name.startswith(("demo-lib", "demo-common")):
            shutil.copy(f, partial)
    with pytest.raises(InputError) as e:
        snapshot(_recipe(tmp_path, partial), node, tmp_path / "b", OutputFormat.dir,
                 progress=Progress(quiet=True))
    assert "demo-lib-1.0-1.noarch" in e.value.message
    assert "demo-common-1.0-1.noarch" in e.value.message
    assert not (tmp_path / "b").exists()


@pytest.mark.rpm
def test_cli_snapshot_refuses_an_existing_output(node: Path, tmp_path: Path,
                                                 demo_rpms: Path) -> None:  # noqa: F811
    path = tmp_path / "node.toml"
    path.write_text(RECIPE.format(rpms=demo_rpms))
    (tmp_path / "out").mkdir()
    r = subprocess.run([sys.executable, str(REPO / "build.py"), "snapshot", str(path),
                        "--source-root", str(node), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr


# uid 1 and 2 are daemon and bin on the Debian build host, bin and daemon on EL;
# demoapp (4711) does not exist on the build host at all.
EL_PASSWD = ("root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n"
             "daemon:x:2:2:daemon:/sbin:/sbin/nologin\n"
             "demoapp:x:4711:4711:demo app:/var/lib/demo:/sbin/nologin\n")
EL_GROUP = "root:x:0:\nbin:x:1:\ndaemon:x:2:\ndemoapp:x:4711:\n"

OWNERS_RECIPE = """
[bundle]
name = "owners"
version = "1"
distro = "rhel"
distro_version = "9"
source_date_epoch = 1767225600

[[files]]
name = "app"
paths = ["srv/app"]

[[files.override]]
match = "srv/app/given.conf"
owner = "demoapp"
group = "daemon"
"""


def test_owners_are_named_by_the_source_roots_passwd(tmp_path: Path) -> None:
    node = tmp_path / "node"
    (node / "etc").mkdir(parents=True)
    (node / "etc/os-release").write_text(OS_RELEASE)
    (node / "etc/passwd").write_text(EL_PASSWD)
    (node / "etc/group").write_text(EL_GROUP)
    app = node / "srv/app"
    app.mkdir(parents=True)
    for name, uid, gid in (("data.db", 4711, 4711), ("daemon.pid", 2, 2),
                           ("orphan", 4242, 4242), ("given.conf", 0, 0)):
        (app / name).write_text(name)
        os.chown(app / name, uid, gid)
    os.chown(app, 4711, 1)
    recipe_path = tmp_path / "owners.toml"
    recipe_path.write_text(OWNERS_RECIPE)
    bundle = snapshot(recipes.load(recipe_path), node, tmp_path / "bundle", OutputFormat.dir,
                      progress=Progress(quiet=True)).path

    archived = {e.pathname.rstrip("/"): (e.uname or "", e.uid, e.gname or "", e.gid)
                for e in read_entries(bundle / "files/app.tar.zst")}
    assert archived == {
        "srv/app": ("demoapp", 4711, "bin", 1),
        "srv/app/data.db": ("demoapp", 4711, "demoapp", 4711),
        "srv/app/daemon.pid": ("daemon", 2, "daemon", 2),  # "bin" on this host
        "srv/app/orphan": ("", 4242, "", 4242),  # unnamed in the source: number only
        "srv/app/given.conf": ("demoapp", 4711, "daemon", 2),  # override, by source names
    }
    manifest = json.loads((bundle / "manifest.json").read_text())
    index = manifest["components"]["filesets"]["sets"][0]["index"]
    assert (index["srv/app/data.db"]["user"], index["srv/app/data.db"]["uid"]) == \
        ("demoapp", 4711)

    # The import maps the names through the target's own passwd and group.
    target = tmp_path / "target"
    (target / "etc").mkdir(parents=True)
    (target / "etc/os-release").write_text(OS_RELEASE)
    (target / "etc/passwd").write_text(EL_PASSWD.replace(":4711:4711:", ":5000:5001:"))
    (target / "etc/group").write_text(EL_GROUP.replace(":4711:", ":5001:"))
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run([python, str(bundle / "install"), "import", "--root", str(target),
                        "--unattended"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    owners = {name: (st.st_uid, st.st_gid) for name in ("data.db", "daemon.pid", "orphan",
                                                        "given.conf")
              for st in [os.lstat(target / "srv/app" / name)]}
    assert owners == {"data.db": (5000, 5001), "daemon.pid": (2, 2), "orphan": (4242, 4242),
                      "given.conf": (5000, 2)}


def test_owner_names_of_a_root(tmp_path: Path) -> None:
    from bundler.owners import OwnerNames

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("# comment\n+nis::::::\nbin:x:1:1::/:/x\n"
                                         "alias:x:1:1::/:/x\nbad:x:y:1::/:/x\n")
    names = OwnerNames(tmp_path)
    assert (names.user(1), names.uid("alias"), names.uid("bad"), names.user(0)) == \
        ("bin", 1, None, None)
    assert names.group(1) is None and names.gid("bin") is None  # no etc/group: numbers only
    host = OwnerNames(Path("/"))
    assert host.host and host.user(0) == "root" and host.uid("root") == 0


@pytest.mark.rpm
def test_snapshot_round_trip_through_iso_volumes(node: Path, tmp_path: Path,
                                                 demo_rpms: Path) -> None:  # noqa: F811
    """The same node snapshotted onto ISO volumes of a small split size, each read
    like a mounted disc, imported from all of them: the same packages and files."""
    result = snapshot(_recipe(tmp_path, demo_rpms), node, tmp_path / "node", OutputFormat.iso,
                      progress=Progress(quiet=True),
                      medium=medium_for(None, parse_size("512K"), iso=True))
    images = sorted(tmp_path.glob("node.vol*.iso"))
    assert len(images) >= 2, result
    discs = []
    for image in images:  # "mount" each disc: read the image into a directory
        disc = tmp_path / image.name.replace(".iso", "")
        disc.mkdir()
        with contextlib.chdir(disc):
            libarchive.extract_file(str(image))
        discs.append(disc)

    target = _base_root(tmp_path / "target", demo_rpms)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    argv = [python, str(discs[-1] / "install"), "import", "--root", str(target),
            "--unattended"]
    for disc in discs[:-1]:
        argv += ["--volume", str(disc)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    assert installed(target) == installed(node)
    rels = ["etc/demo/app.conf", "etc/demo/local.conf", "srv/demo/records.db",
            "etc/pki/demo/node.key", "etc/pki/demo/node.crt", "usr/bin/demo-app"]
    assert _file_facts(target, rels) == _file_facts(node, rels)
