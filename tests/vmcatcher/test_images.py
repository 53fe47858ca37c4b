"""Real qemu-img conversions: what OpenNebula copies is the image in the configured format."""

import subprocess
import tarfile
from pathlib import Path

from tests.onesim.sim import READY
from tests.onesim.xmlbody import template_get

from .conftest import IDENT, Site, sha512

# a small disk with recognisable, non-zero content (1 MiB)
RAW = bytes(range(256)) * 2048 + b"\x00" * (1 << 19) + b"satchel" * 74898
RAW = RAW[: 1 << 20]


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def make_qcow2(tmp: Path) -> Path:
    raw, qcow2 = tmp / "disk.raw", tmp / "disk.qcow2"
    raw.write_bytes(RAW)
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2))
    assert qcow2.read_bytes()[:4] == b"QFI\xfb"
    return qcow2


def test_qcow2_is_converted_to_raw(site: Site, tmp_path: Path) -> None:
    data = site.cached(make_qcow2(tmp_path).read_bytes())
    env = site.event(data=data, VMCATCHER_EVENT_HV_FORMAT="qcow2")
    assert site.run(env) == 0
    (img,) = site.sim.named(IDENT)
    assert img.state == READY and img.format == "raw"
    assert img.sha512 == sha512(RAW)  # oned got exactly the disk's raw content
    assert template_get(img.template, "SATCHEL_SHA512") == sha512(data)
    assert template_get(img.template, "DRIVER") == "raw"
    assert site.work_dirs() == []  # the converted copy is removed once READY


def test_raw_is_converted_to_qcow2_when_configured(site: Site) -> None:
    site.configure(image_format="qcow2")
    assert site.run(site.event(data=site.cached(RAW))) == 0
    (img,) = site.sim.named(IDENT)
    assert img.state == READY and img.format == "qcow2"
    assert template_get(img.template, "DRIVER") == "qcow2"


def test_ova_disk_is_extracted_and_converted(site: Site, tmp_path: Path) -> None:
    qcow2 = make_qcow2(tmp_path)
    ovf = tmp_path / "appliance.ovf"
    ovf.write_text('<?xml version="1.0"?><Envelope><References>'
                   '<File ovf:href="disk1.qcow2"/></References></Envelope>')
    ova = tmp_path / "appliance.ova"
    with tarfile.open(ova, "w") as tar:
        tar.add(ovf, arcname="appliance.ovf")
        tar.add(qcow2, arcname="disk1.qcow2")
    data = site.cached(ova.read_bytes())
    assert site.run(site.event(data=data, VMCATCHER_EVENT_HV_FORMAT="OVA")) == 0
    (img,) = site.sim.named(IDENT)
    assert img.state == READY and img.format == "raw"
    assert img.sha512 == sha512(RAW)


def test_a_corrupt_image_fails_before_opennebula_is_touched(site: Site) -> None:
    data = site.cached(b"QFI\xfb" + b"\xff" * 4096)  # qcow2 magic, garbage header
    assert site.run(site.event(data=data, VMCATCHER_EVENT_HV_FORMAT="qcow2")) == 1
    assert site.allocations() == [] and site.sim.images == {}
    assert "qemu-img" in site.log and site.work_dirs() == []
