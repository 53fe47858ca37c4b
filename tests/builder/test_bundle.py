"""Bundles from recipes without packages or databases: files, secrets, installer,
manifest, SHA256SUMS; the three output formats; verify; reproducibility; failures
that must leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.output import OutputFormat
from bundler.progress import Progress
from bundler.verify import verify
from installer.errors import InputError, SatchelError

REPO = Path(__file__).resolve().parents[2]

RECIPE = """
[bundle]
name = "t"
version = "1"
distro = "rhel"
distro_version = "9"
label = "T_VOL"
source_date_epoch = 1700000000

[[files]]
name = "conf"
root = "tree"
paths = ["etc/app", "var/lib/app"]
exclude = ["*.bak"]

[[files.override]]
match = "etc/app/forced.conf"
owner = "nobody"
mode = "0640"

[secrets]
root = "pki"
paths = ["etc/pki/app"]
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    conf = src / "tree/etc/app"
    conf.mkdir(parents=True)
    (conf / "app.conf").write_text("answer = 42\n")
    (conf / "skip.bak").write_text("old\n")
    (conf / "forced.conf").write_text("x\n")
    (conf / "link").symlink_to("app.conf")
    (src / "tree/var/lib/app").mkdir(parents=True)
    big = src / "tree/var/lib/app/data.bin"
    big.write_bytes(os.urandom(3 << 20))
    os.chown(conf / "app.conf", 65534, 65534)
    os.chmod(conf / "app.conf", 0o604)
    os.setxattr(conf / "app.conf", "user.satchel", b"kept")
    os.utime(conf / "app.conf", (1600000000, 1600000000))
    pki = src / "pki/etc/pki/app"
    pki.mkdir(parents=True)
    (pki / "app.key").write_text("-----BEGIN PRIVATE KEY-----\nsecret\n")
    os.chmod(pki / "app.key", 0o600)
    (src / "r.toml").write_text(RECIPE)
    return src


def _build(source: Path, out: Path, fmt: str = "dir", **kw: object) -> Path:
    r = recipes.load(source / "r.toml")
    return build(r, out, OutputFormat(fmt), progress=Progress(quiet=True), **kw).path  # type: ignore[arg-type]


def _members(archive: Path) -> dict[str, object]:
    import libarchive

    out = {}
    with libarchive.file_reader(str(archive)) as a:
        for e in a:
            out[e.pathname] = (e.perm, e.uid, e.uname, e.mtime, e.isreg,
                               b"".join(e.get_blocks()) if e.isreg else None)
    return out


def test_directory_bundle_keeps_owners_modes_xattrs_and_verifies(source: Path,
                                                                  tmp_path: Path) -> None:
    out = _build(source, tmp_path / "b")
    assert sorted(os.listdir(out)) == ["SHA256SUMS", "files", "install", "manifest.json",
                                       "secrets"]
    # sha256sum -c agrees with us: the format is the real one.
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sha256sums"] == hashlib.sha256((out / "SHA256SUMS").read_bytes()).hexdigest()
    listed = {f["path"] for f in manifest["files"]}
    assert listed == {"install", "files/conf.tar.zst", "secrets/secrets.tar.zst"}

    members = _members(out / "files/conf.tar.zst")
    assert "etc/app/skip.bak" not in members
    perm, uid, uname, mtime, _, data = members["etc/app/app.conf"]  # type: ignore[misc]
    assert (perm, uid, uname, mtime, data) == (0o604, 65534, "nobody", 1600000000,
                                               b"answer = 42\n")
    assert members["etc/app/forced.conf"][:3] == (0o640, 65534, "nobody")
    # mtimes clamped to the source date
    assert all(m[3] <= 1700000000 for m in members.values())  # type: ignore[index,operator]
    index = manifest["components"]["filesets"]["sets"][0]["index"]
    assert index["etc/app/link"] == {**index["etc/app/link"], "type": "symlink",
                                     "target": "app.conf"}
    assert index["var/lib/app/data.bin"]["sha256"] == hashlib.sha256(
        (source / "tree/var/lib/app/data.bin").read_bytes()).hexdigest()

    import libarchive
    with libarchive.file_reader(str(out / "files/conf.tar.zst")) as a:
        xattrs = {e.pathname: dict(e.get_xattrs()) if hasattr(e, "get_xattrs") else None
                  for e in a}
    if xattrs["etc/app/app.conf"] is not None:
        assert xattrs["etc/app/app.conf"].get("user.satchel") == b"kept"
    else:  # this libarchive-c cannot list xattrs: check with bsdtar-free pax headers
        raw = subprocess.run(["zstd", "-dc", out / "files/conf.tar.zst"],
                             capture_output=True, check=True).stdout
        assert b"user.satchel" in raw

    assert os.stat(out / "secrets/secrets.tar.zst").st_mode & 0o777 == 0o600
    assert _members(out / "secrets/secrets.tar.zst")["etc/pki/app/app.key"][0] == 0o600
    assert verify(out).ok


def test_installer_verifies_and_inspects_with_the_standard_library_alone(
        source: Path, tmp_path: Path) -> None:
    out = _build(source, tmp_path / "b")
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    ok = subprocess.run([python, "-I", "-S", str(out / "install"), "verify"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    info = subprocess.run([python, "-I", "-S", str(out / "install"), "inspect", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(info.stdout)["recipe"]["name"] == "t"
    (out / "files/conf.tar.zst").write_bytes(b"tampered")
    bad = subprocess.run([python, "-I", "-S", str(out / "install"), "verify"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "files/conf.tar.zst" in bad.stderr


@pytest.mark.parametrize("fmt", ["dir", "tar", "iso"])
def test_same_inputs_give_identical_bytes(source: Path, tmp_path: Path, fmt: str) -> None:
    a = _build(source, tmp_path / "a", fmt)
    b = _build(source, tmp_path / "b", fmt)

    def digest(p: Path) -> dict[str, str]:
        if p.is_dir():
            return {f: hashlib.sha256((p / f).read_bytes()).hexdigest()
                    for f in sorted(os.listdir(p)) if (p / f).is_file()}
        if fmt == "iso":  # the image's own volume and root-directory dates are the
            # time of writing (libarchive's ISO writer): compare what it holds
            import libarchive
            with libarchive.file_reader(str(p)) as archive:
                return {e.pathname: hashlib.sha256(b"".join(e.get_blocks())).hexdigest()
                        for e in archive if e.isfile}
        return {"": hashlib.sha256(p.read_bytes()).hexdigest()}

    first = digest(a)
    assert any(k.endswith("manifest.json") for k in first) or fmt == "tar"
    assert first == digest(b)
    if fmt == "dir":
        for sub in ("files/conf.tar.zst", "secrets/secrets.tar.zst"):
            assert (a / sub).read_bytes() == (b / sub).read_bytes()


@pytest.mark.parametrize("fmt", ["dir", "tar", "iso"])
def test_verify_names_flipped_missing_and_extra_files(source: Path, tmp_path: Path,
                                                      fmt: str) -> None:
    out = _build(source, tmp_path / "b", fmt)
    assert verify(out).ok
    work = tmp_path / "work"
    if fmt == "dir":
        work = out
    else:
        work.mkdir()
        import libarchive
        cwd = os.getcwd()
        os.chdir(work)
        try:
            libarchive.extract_file(str(out))
        finally:
            os.chdir(cwd)
        if fmt == "tar":
            work = work / "t-1"
    data = bytearray((work / "install").read_bytes())
    data[100] ^= 0xFF
    (work / "install").write_bytes(bytes(data))
    (work / "secrets/secrets.tar.zst").unlink()
    (work / "files/stowaway").write_text("x")
    report = verify(work)
    assert not report.ok
    assert report.altered == ["install"]
    assert report.missing == ["secrets/secrets.tar.zst"]
    assert report.extra == ["files/stowaway"]


def test_verify_archive_with_a_flipped_byte_fails(source: Path, tmp_path: Path) -> None:
    out = _build(source, tmp_path / "b", "tar")
    # Rewrite the .tar.zst with one member changed, keeping everything else.
    import libarchive
    bad = tmp_path / "bad.tar.zst"
    with libarchive.file_reader(str(out)) as a, \
            libarchive.file_writer(str(bad), "pax_restricted", "zstd") as w:
        for e in a:
            data = b"".join(e.get_blocks()) if e.isreg else b""
            if e.pathname.endswith("files/conf.tar.zst"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            w.add_file_from_memory(e.pathname, len(data), data) if e.isreg else None
    report = verify(bad)
    assert report.altered == ["files/conf.tar.zst"]


def test_existing_output_is_refused_without_force(source: Path, tmp_path: Path) -> None:
    out = _build(source, tmp_path / "b")
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(InputError, match="already exists") as e:
        _build(source, tmp_path / "b")
    assert e.value.exit_code == 2
    assert (out / "manifest.json").read_bytes() == before
    (source / "tree/etc/app/new.conf").write_text("new\n")
    _build(source, tmp_path / "b", force=True)
    assert b"etc/app/new.conf" in (out / "manifest.json").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "src"]


def test_a_failed_build_leaves_nothing_that_looks_like_a_bundle(source: Path,
                                                                tmp_path: Path) -> None:
    shutil.rmtree(source / "tree/var/lib/app")
    with pytest.raises(InputError, match="var/lib/app: does not exist"):
        _build(source, tmp_path / "b", "tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_running_out_of_disk_removes_the_staging_tree(source: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        with pytest.raises(SatchelError, match="out of disk space") as e:
            _build(source, small / "b")
        assert e.value.exit_code == 1
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_cli_exit_codes_and_json(source: Path, tmp_path: Path) -> None:
    py = sys.executable
    out = tmp_path / "b"
    r = subprocess.run([py, str(REPO / "build.py"), "build", str(source / "r.toml"), "--out",
                        str(out), "--json"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bundle"] == str(out)
    again = subprocess.run([py, str(REPO / "build.py"), "build", str(source / "r.toml"),
                            "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    v = subprocess.run([py, str(REPO / "build.py"), "verify", str(out), "--json"],
                       capture_output=True, text=True, cwd=REPO)
    assert v.returncode == 0 and json.loads(v.stdout)["ok"] is True
    (source / "bad.toml").write_text("[bundle]\nname = 1\n")
    bad = subprocess.run([py, str(REPO / "build.py"), "build", str(source / "bad.toml"),
                          "--out", str(tmp_path / "c")], capture_output=True, text=True,
                         cwd=REPO)
    assert bad.returncode == 2
    assert f"{source / 'bad.toml'}: bundle.name: expected a string" in bad.stderr
    assert f"{source / 'bad.toml'}: bundle.version: missing" in bad.stderr
