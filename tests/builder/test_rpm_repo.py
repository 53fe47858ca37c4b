"""repo/: real rpmbuild, createrepo_c and dnf on the demo RPMs from payload/demo."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import rpm

from bundler.components import rpm_repo
from bundler.components.rpm_repo import Rpm, resolve
from bundler.dnf import dnf_installroot, installed, rpm_root
from bundler.rpmbuild import build_specs
from installer.errors import InputError, ToolError

from .conftest import SDE, MakeCtx

pytestmark = pytest.mark.rpm

CHAIN = ["demo-app-1.0-1.noarch", "demo-common-1.0-1.noarch", "demo-lib-1.0-1.noarch"]


def _subset(src: Path, dest: Path, names: list[str]) -> Path:
    dest.mkdir()
    for name in names:
        shutil.copy(src / f"{name}.rpm", dest)
    return dest


def test_closure_pulls_the_chain_but_not_the_extra(demo_rpms: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx([demo_rpms])
    rpm_repo.check(ctx)
    section = rpm_repo.build(ctx)
    assert section is not None
    assert [p["nevra"] for p in section["packages"]] == CHAIN
    assert section["base"] == ["demo-base"]
    assert section["base_packages"] == ["demo-base-9.0-1.noarch"]
    app = section["packages"][0]
    assert app["requires_base"] == ["/usr/bin/demo-base-sh", "demo-base-release >= 9"]
    assert app["license"] == "MIT" and app["sourcerpm"] == "demo-1.0-1.src.rpm"
    assert app["signed"] is False and app["epoch"] == 0
    staged = ctx.staging.root
    assert sorted(p.name for p in (staged / "repo/Packages").iterdir()) == [
        f"{n}.rpm" for n in CHAIN]
    for p in section["packages"]:
        data = (staged / p["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"] == \
            ctx.staging.entries[p["file"]].sha256
        assert len(data) == p["size"]
    # Every file under repo/ is registered with the staging tree.
    on_disk = {str(f.relative_to(staged)) for f in staged.rglob("*") if f.is_file()}
    assert on_disk == set(ctx.staging.entries)
    assert "repo/repodata/repomd.xml" in on_disk


def test_base_given_as_capabilities(demo_rpms: Path, make_ctx: MakeCtx, tmp_path: Path) -> None:
    src = _subset(demo_rpms, tmp_path / "src", list(CHAIN))
    ctx = make_ctx([src], base=["demo-base-release", "/usr/bin/demo-base-sh",
                                "/etc/demo-base-release"])
    section = rpm_repo.build(ctx)
    assert section is not None
    assert [p["nevra"] for p in section["packages"]] == CHAIN
    assert section["base_packages"] == []


def test_every_unmet_requirement_is_named(demo_rpms: Path, make_ctx: MakeCtx,
                                          tmp_path: Path) -> None:
    src = _subset(demo_rpms, tmp_path / "src", CHAIN[:1] + CHAIN[2:])  # no demo-common
    ctx = make_ctx([src], base=[])
    with pytest.raises(InputError) as e:
        rpm_repo.build(ctx)
    msg = str(e.value)
    assert "demo-lib-1.0-1.noarch requires demo-common = 1.0-1" in msg
    assert "demo-app-1.0-1.noarch requires demo-base-release >= 9" in msg
    assert "demo-app-1.0-1.noarch requires /usr/bin/demo-base-sh" in msg
    assert not (ctx.staging.root / "repo").exists()


def test_include_matching_nothing_is_named(demo_rpms: Path, make_ctx: MakeCtx) -> None:
    ctx = make_ctx([demo_rpms], include=["demo-app", "no-such-*", "demo-base"])
    with pytest.raises(InputError) as e:
        rpm_repo.build(ctx)
    assert "'no-such-*' matches no package" in str(e.value)
    assert "'demo-base' matches no package in the sources (it is part of the declared base)" \
        in str(e.value)


def test_missing_source_dir_fails_in_check(demo_rpms: Path, make_ctx: MakeCtx,
                                           tmp_path: Path) -> None:
    ctx = make_ctx([demo_rpms, tmp_path / "nowhere"])
    with pytest.raises(InputError, match="nowhere"):
        rpm_repo.check(ctx)
    assert not ctx.staging.root.exists()


def test_highest_evr_wins(demo_rpms: Path, make_ctx: MakeCtx, tmp_path: Path) -> None:
    spec = tmp_path / "demo-lib.spec"
    spec.write_text("""\
Name: demo-lib
Version: 1.1
Release: 1
Summary: a newer demo-lib
License: MIT
BuildArch: noarch
Requires: demo-common
Provides: demo-lib(api) = 1
%description
newer
%install
mkdir -p %{buildroot}/usr/lib/demo
echo new > %{buildroot}/usr/lib/demo/lib.sh
%files
/usr/lib/demo
""")
    newer = tmp_path / "newer"
    build_specs([spec], newer, SDE)
    section = rpm_repo.build(make_ctx([demo_rpms, newer]))
    assert section is not None
    assert [p["nevra"] for p in section["packages"]] == [
        "demo-app-1.0-1.noarch", "demo-common-1.0-1.noarch", "demo-lib-1.1-1.noarch"]


def _pkg(name: str, version: str, requires: tuple[rpm_repo.Dep, ...] = (),
         provides: tuple[rpm_repo.Dep, ...] = (), files: tuple[str, ...] = ()) -> Rpm:
    return Rpm(path=Path(f"/src/{name}-{version}-1.noarch.rpm"), name=name, epoch=None,
               version=version, release="1", arch="noarch", license="MIT",
               sourcerpm=f"{name}-{version}-1.src.rpm", signed=False,
               provides=((name, rpm.RPMSENSE_EQUAL, f"{version}-1"), *provides),
               requires=requires, files=frozenset(files))


def test_a_versioned_requirement_picks_the_version_that_satisfies_it() -> None:
    eq = rpm.RPMSENSE_EQUAL
    pkgs = [
        _pkg("app", "1", requires=(("lib", eq, "1-1"), ("/bin/tool", 0, ""),
                                   ("rpmlib(FileDigests)", rpm.RPMSENSE_RPMLIB, "4.6.0-1"),
                                   ("(lib if extra)", 0, ""))),
        _pkg("lib", "1"), _pkg("lib", "2"),
        _pkg("tools", "3", files=("/bin/tool",)), _pkg("tools", "2", files=("/bin/tool",)),
    ]
    closure = resolve(pkgs, ["app"], [])
    assert [p.nevra for p in closure.packages] == [
        "app-1-1.noarch", "lib-1-1.noarch", "tools-3-1.noarch"]
    assert closure.unchecked == {"app-1-1.noarch": ["(lib if extra)"]}
    # Included by name, lib is the newest; one version per name, so app's need is unmet.
    with pytest.raises(InputError, match=r"app-1-1.noarch requires lib = 1-1"):
        resolve(pkgs, ["app", "lib"], [], "x86_64")


def test_repodata_is_reproducible(demo_rpms: Path, make_ctx: MakeCtx) -> None:
    a, b = make_ctx([demo_rpms]), make_ctx([demo_rpms])
    assert rpm_repo.build(a) == rpm_repo.build(b)
    files = sorted(p.relative_to(a.staging.root) for p in a.staging.root.rglob("*")
                   if p.is_file())
    assert files == sorted(p.relative_to(b.staging.root) for p in b.staging.root.rglob("*")
                           if p.is_file())
    for rel in files:
        assert (a.staging.root / rel).read_bytes() == (b.staging.root / rel).read_bytes(), rel
    repomd = (a.staging.root / "repo/repodata/repomd.xml").read_text()
    assert f"<revision>{SDE}</revision>" in repomd
    assert f"<timestamp>{SDE}</timestamp>" in repomd


def test_dnf_installs_from_the_repo(demo_rpms: Path, make_ctx: MakeCtx, tmp_path: Path) -> None:
    ctx = make_ctx([demo_rpms])
    rpm_repo.build(ctx)
    root = tmp_path / "root"
    root.mkdir()
    rpm_root(root, ["-i", "--nodeps", str(demo_rpms / "demo-base-9.0-1.noarch.rpm")])
    dnf_installroot(root, ctx.staging.root / "repo", ["install", "demo-app"])
    assert installed(root) == sorted(["demo-base-9.0-1.noarch", *CHAIN])
    assert (root / "etc/demo/app.conf").is_file()
    assert (root / "usr/lib/systemd/system/demo-app.service").is_file()
    assert (root / "var/lib/demo/installed").read_text() == "demo-app 1.0-1\n"  # %post ran


def test_build_specs_skips_unchanged_and_rebuilds_changed(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.spec"
    text = ("Name: tiny\nVersion: 1\nRelease: 1\nSummary: t\nLicense: MIT\n"
            "BuildArch: noarch\n%description\nt\n%files\n")
    spec.write_text(text)
    out = tmp_path / "out"
    first = build_specs([spec], out, SDE)
    assert [p.name for p in first] == ["tiny-1-1.noarch.rpm"]
    mtime = first[0].stat().st_mtime_ns
    assert build_specs([spec], out, SDE) == first
    assert first[0].stat().st_mtime_ns == mtime
    spec.write_text(text.replace("Version: 1", "Version: 2"))
    second = build_specs([spec], out, SDE)
    assert [p.name for p in second] == ["tiny-2-1.noarch.rpm"]
    assert sorted(p.name for p in out.glob("*.rpm")) == ["tiny-2-1.noarch.rpm"]


def test_build_specs_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.spec"):
        build_specs([tmp_path / "nope.spec"], tmp_path / "out", SDE)
    bad = tmp_path / "bad.spec"
    bad.write_text("Name: bad\nVersion: 1\nRelease: 1\nSummary: b\nLicense: MIT\n"
                   "BuildArch: noarch\n%description\nb\n%install\nexit 3\n%files\n")
    with pytest.raises(ToolError, match=r"rpmbuild of .*bad\.spec failed"):
        build_specs([bad], tmp_path / "out", SDE)


def test_a_broken_rpm_is_named(make_ctx: MakeCtx, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.rpm").write_bytes(b"not an rpm at all\n" * 10)
    with pytest.raises(InputError, match=r"broken\.rpm: not a readable RPM"):
        rpm_repo.build(make_ctx([src]))
