"""The NFS ISO domain (installer/plugins/setup/isodomain.py) in a temporary root with
the engine appliance installed: a new domain, an existing one accepted, a non-domain
directory refused, the /etc/exports migration, NFS ports, images from engine-iso-files."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from installer.errors import EXIT_OK, EXIT_USAGE
from installer.plugins.setup import isodomain
from tests.setup.conftest import FQDN, RunSetup, engine_section
from tests.treesnap import tree

pytestmark = [pytest.mark.rpm, pytest.mark.root]

SKIP = ("var/log", "var/lib/satchel/lock", "var/lib/satchel/backup", "var/lib/rpm")
PATH = "/var/lib/exports/iso"
IMAGES = "images/11111111-1111-1111-1111-111111111111"
UNIT = "[Unit]\nDescription={0}\n[Service]\nExecStart=/bin/true\n" \
       "[Install]\nWantedBy=multi-user.target\n"


def _tree(root: Path) -> dict[str, Any]:
    return tree(root, lambda rel: rel.startswith(SKIP))


def _section() -> dict[str, Any]:
    return {"app": "engine", "iso_domain": engine_section()["iso_domain"]}


def _state(root: Path) -> dict[str, Any]:
    return json.loads((root / "var/lib/satchel/state.json").read_text())["actions"]["setup"]


def _log(runner: Any) -> str:
    return Path(runner.log_path).read_text()


def test_section_problems() -> None:
    assert isodomain.check_section(engine_section()["iso_domain"]) == []
    problems = isodomain.check_section({"path": "var/iso", "name": "ISO DOMAIN", "acl": "",
                                        "packages": [""], "nfs_ports": {"mountd": 0},
                                        "extra": 1})
    assert any(p.startswith("extra: unknown key") for p in problems)
    assert any(p.startswith("path: expected an absolute path") for p in problems)
    assert any(p.startswith("name: 'ISO DOMAIN' is not a domain name") for p in problems)
    assert any(p.startswith("acl: ") for p in problems)
    assert "packages: expected a list of package names" in problems
    assert "nfs_ports.mountd: 0 is not a port (1-65535)" in problems


def test_exports_entries_are_removed_and_the_rest_kept() -> None:
    text = ("# exports\n/srv/a *(ro)\n/var/lib/exports/iso/ 10.0.0.0/8(rw) \\\n"
            "   192.168.0.0/16(ro)\n\"/var/lib/exports/iso\" *(rw)\n"
            "/var/lib/exports/iso2 *(rw)\n#/var/lib/exports/iso *(rw)\n")
    kept, removed = isodomain.without_export(text, PATH)
    assert kept == "# exports\n/srv/a *(ro)\n/var/lib/exports/iso2 *(rw)\n" \
                   "#/var/lib/exports/iso *(rw)\n"
    assert len(removed) == 2
    assert isodomain.without_export(text, "/srv/b") == (text, [])


def test_new_domain_exported_with_images(engine_root: Path, setup_config: Any,
                                         run_setup: RunSetup) -> None:
    root = engine_root
    (root / "etc/exports").write_text("# my exports\n/srv/data *(ro)\n"
                                      f"{PATH} 10.0.0.0/8(rw)\n/srv/more *(rw)\n")
    (root / "etc/sysconfig").mkdir()
    (root / "etc/sysconfig/nfs").write_text("# NFS settings\nRPCNFSDCOUNT=16\n"
                                            "MOUNTD_PORT=20048\n")
    setup_config(root, _section())
    code, runner, out = run_setup(root)
    assert code == EXIT_OK, out

    domains = os.listdir(root / PATH.lstrip("/"))
    assert len(domains) == 1
    sd = root / PATH.lstrip("/") / domains[0]
    uuid.UUID(domains[0])
    meta = dict(line.split("=", 1) for line in (sd / "dom_md/metadata").read_text().splitlines())
    assert meta["CLASS"] == "Iso" and meta["DESCRIPTION"] == "ISO_DOMAIN"
    assert meta["SDUUID"] == domains[0] and meta["REMOTE_PATH"] == f"{FQDN}:{PATH}"
    for rel in ("", "dom_md", "dom_md/metadata", "dom_md/ids", "dom_md/leases", IMAGES):
        st = os.stat(sd / rel)
        assert (st.st_uid, st.st_gid) == (36, 36), rel
    st = os.stat(root / PATH.lstrip("/"))
    assert (st.st_uid, st.st_gid) == (36, 36)
    assert os.stat(root / "var/lib/exports").st_uid == 0  # a parent: root's

    images = sd / IMAGES
    assert sorted(os.listdir(images)) == ["engine-drivers.vfd", "engine-guest-tools.iso"]
    assert (images / "engine-drivers.vfd").read_bytes() == \
        (root / "usr/share/engine-iso/engine-drivers.vfd").read_bytes()
    assert os.stat(images / "engine-guest-tools.iso").st_mode & 0o777 == 0o644

    exports_d = (root / "etc/exports.d/engine.exports").read_text()
    assert f"\n{PATH} 0.0.0.0/0.0.0.0(rw)\n" in exports_d
    assert (root / "etc/exports").read_text() == \
        "# my exports\n/srv/data *(ro)\n/srv/more *(rw)\n"
    nfs = (root / "etc/sysconfig/nfs").read_text().splitlines()
    assert nfs[:3] == ["# NFS settings", "RPCNFSDCOUNT=16", "MOUNTD_PORT=892"]
    for line in ("RQUOTAD_PORT=875", "LOCKD_TCPPORT=32803", "LOCKD_UDPPORT=32769",
                 "STATD_PORT=662", "STATD_OUTGOING_PORT=2020"):
        assert line in nfs

    # Not the running system: no SELinux labels; no nfs-utils in the root: noted.
    assert f"SELinux file context of {PATH} skipped" in _log(runner)
    assert "nfs-server.service is not installed in the root" in out
    state = _state(root)
    assert state["services"]["nfs-server.service"]["wanted"] == "enabled"
    assert not state["services"]["nfs-server.service"]["enabled"]
    assert f"{PATH}/{domains[0]}/{IMAGES}/engine-guest-tools.iso" in state["files"]
    assert "/etc/exports" in state["files"] and "/etc/exports.d/engine.exports" in state["files"]

    before = _tree(root)
    code, runner, out = run_setup(root)
    assert code == EXIT_OK, out
    assert runner.context.transaction.changes() == 0
    assert _tree(root) == before


def test_existing_domain_accepted_and_nfs_units_enabled(engine_root: Path, setup_config: Any,
                                                        run_setup: RunSetup) -> None:
    root = engine_root
    sd_uuid = "0b9b2c7e-6f57-4e1c-9d0b-2a1f3c4d5e6f"
    sd = root / PATH.lstrip("/") / sd_uuid
    (sd / "dom_md").mkdir(parents=True)
    metadata = f"CLASS=Iso\nDESCRIPTION=OLD_ISO\nSDUUID={sd_uuid}\nTYPE=NFS\n"
    (sd / "dom_md/metadata").write_text(metadata)
    units = root / "usr/lib/systemd/system"
    for unit in ("rpcbind.service", "nfs-server.service"):
        (units / unit).write_text(UNIT.format(unit))
    setup_config(root, _section())
    code, _, out = run_setup(root)
    assert code == EXIT_OK, out

    assert os.listdir(root / PATH.lstrip("/")) == [sd_uuid]
    assert (sd / "dom_md/metadata").read_text() == metadata  # left as it was
    assert "the existing domain 'OLD_ISO'" in out
    assert sorted(os.listdir(sd / IMAGES)) == ["engine-drivers.vfd", "engine-guest-tools.iso"]
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert os.readlink(wants / "nfs-server.service") == \
        "/usr/lib/systemd/system/nfs-server.service"
    assert (wants / "rpcbind.service").is_symlink()
    assert _state(root)["services"]["rpcbind.service"]["enabled"] is True

    before = _tree(root)
    code, _, out = run_setup(root)
    assert code == EXIT_OK, out
    assert _tree(root) == before


def test_a_directory_that_is_no_domain_is_refused(engine_root: Path, setup_config: Any,
                                                  run_setup: RunSetup) -> None:
    root = engine_root
    (root / PATH.lstrip("/")).mkdir(parents=True)
    (root / PATH.lstrip("/") / "notes.txt").write_text("mine\n")
    setup_config(root, _section())
    before = _tree(root)
    code, _, out = run_setup(root)
    assert code == EXIT_USAGE, out
    assert f"SETUP_NFS/path: {PATH} is not empty and holds no storage domain" in out
    assert _tree(root) == before

    code, _, out = run_setup(root, {"SETUP_NFS/acl": "*(rw) bad(("})
    assert code == EXIT_USAGE, out
    assert "SETUP_NFS/acl: " in out
    assert _tree(root) == before

    code, _, out = run_setup(root, {"SETUP_NFS/configure": "false"})
    assert code == EXIT_OK, out
    assert "NFS ISO domain: not configured" in out
    assert not (root / "etc/exports.d").exists()
    assert not (root / "etc/sysconfig/nfs").exists()
