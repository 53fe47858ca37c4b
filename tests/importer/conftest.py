"""Fixtures shared by the import tests: the demo RPMs (with a test-only package that
can stop dnf in the middle of its rpm transaction), the demo bundle, and a fresh
target root."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from bundler import recipe as recipes
from bundler.build import build
from bundler.output import OutputFormat
from bundler.progress import Progress
from bundler.rpmbuild import build_specs
from tests.importer.helpers import REPO, SDE, make_root

DEMO_RECIPE = f"""
[bundle]
name = "imp"
version = "1"
distro = "rhel"
distro_version = "9"
arch = "x86_64"
source_date_epoch = {SDE}

[packages]
include = ["demo-app"]
sources = ["rpms"]
base = ["demo-base"]
allow_unsigned = true

[[files]]
name = "config"
root = "tree"
paths = ["etc/demo", "var/lib/demo"]

[secrets]
root = "pki"
paths = ["etc/pki/demo"]

[services]
enable = ["demo-app.service"]
"""

# Requires demo-app, so rpm runs its %pre after the demo packages are installed, in
# the same transaction. The Lua scriptlet runs inside rpm (no shell needed in the
# root) and stops dnf there when asked: that is where the resume test kills it.
PAUSE_SPEC = """\
%define _buildhost satchel
Name:           demo-pause
Version:        1.0
Release:        1
Summary:        Test package: stops dnf in its %pre on request
License:        MIT
BuildArch:      noarch
Requires:       demo-app

%description
Stops the installing process (SIGSTOP) in its %pre when SATCHEL_STOP_AT=rpm:demo-pause.

%prep

%build

%install
mkdir -p %{buildroot}%{_datadir}/demo-pause
echo pause > %{buildroot}%{_datadir}/demo-pause/pause.txt

%pre -p <lua>
if posix.getenv("SATCHEL_STOP_AT") == "rpm:demo-pause" then
    posix.kill(math.tointeger(posix.getprocessid("pid")), 19)
end

%files
%{_datadir}/demo-pause

%changelog
* Sat Nov 21 2026 satchel <satchel@example.invalid> - 1.0-1
- Test package
"""


@pytest.fixture(scope="session")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo RPMs (demo-base, -app, -lib, -common, -extra) and demo-pause."""
    out = tmp_path_factory.mktemp("rpms")
    specs = tmp_path_factory.mktemp("specs")
    (specs / "demo-pause.spec").write_text(PAUSE_SPEC)
    build_specs([*sorted((REPO / "payload/demo").glob("*.spec")), specs / "demo-pause.spec"],
                out, SDE)
    return out


@pytest.fixture
def root(tmp_path: Path, rpms: Path) -> Path:
    return make_root(tmp_path / "root", rpms)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, rpms: Path) -> Path:
    """The demo bundle: demo-app's packages, a file set, secrets and a service."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(rpms, src / "rpms", ignore=shutil.ignore_patterns("demo-base*"))
    shutil.copytree(REPO / "payload/demo/files", src / "tree")
    (src / "tree/etc/demo/app.conf").write_text("# restored by satchel\nport = 8080\n")
    os.chown(src / "tree/var/lib/demo/README", 65534, 65534)
    pki = src / "pki/etc/pki/demo"
    pki.mkdir(parents=True)
    (pki / "demo.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n")
    os.chmod(pki / "demo.key", 0o600)
    (pki / "demo.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a real cert\n")
    (src / "r.toml").write_text(DEMO_RECIPE)
    # The base package lives outside the bundle's sources: the target has it.
    base_dir = src / "base"
    base_dir.mkdir()
    for f in rpms.glob("demo-base-*.rpm"):
        shutil.copy(f, base_dir)
    r = recipes.load(src / "r.toml")
    r = dataclasses.replace(r, packages=dataclasses.replace(
        r.packages, sources=(*r.packages.sources, base_dir)))
    return build(r, src / "bundle", OutputFormat.dir, progress=Progress(quiet=True)).path
