"""The image file: its sha512, its real format, an OVA's disk, qemu-img convert."""

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
from typing import List, Optional

from installer.errors import InputError, ToolError

from .errors import HandlerError

log = logging.getLogger("satchel.vmcatcher")
DISK_SUFFIXES = (".vmdk", ".qcow2", ".img", ".raw", ".vhd", ".vhdx", ".vdi")


def sha512_file(path: str) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run(argv: List[str]) -> str:
    """Run a tool (argv list, no stdin, C locale); a failure names it and its code."""
    log.debug("+ %s", " ".join(argv))
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              env=env, check=False, text=True)
    except OSError as e:
        raise ToolError(f"cannot run {argv[0]}: {e.strerror}") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or [""]
        raise ToolError(f"{' '.join(argv[:2])} failed with exit code {proc.returncode}: "
                        f"{detail[0]}")
    return proc.stdout


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        raise ToolError("qemu-img is not installed",
                        hint="install the qemu-img package (EL: qemu-img)")
    return path


def detect_format(path: str) -> str:
    info = json.loads(run([qemu_img(), "info", "--output=json", path]))
    return str(info["format"])


def _ova_disks(tar: tarfile.TarFile) -> List[tarfile.TarInfo]:
    files = [m for m in tar.getmembers() if m.isfile()]
    if not any(m.name.lower().endswith(".ovf") for m in files):
        return []
    disks = [m for m in files if m.name.lower().endswith(DISK_SUFFIXES)]
    if not disks:  # no known suffix: the largest member that is not metadata
        disks = [m for m in files
                 if not m.name.lower().endswith((".ovf", ".mf", ".cert"))]
    return sorted(disks, key=lambda m: -m.size)


def is_ova(path: str, hv_format: str) -> bool:
    if hv_format.lower() != "ova" and not path.lower().endswith(".ova"):
        try:
            if not tarfile.is_tarfile(path):
                return False
        except OSError:
            return False
    try:
        with tarfile.open(path) as tar:
            return bool(_ova_disks(tar))
    except (tarfile.TarError, OSError):
        if hv_format.lower() == "ova":
            raise InputError(f"{path} is announced as OVA but is not a tar archive") \
                from None
        return False


def extract_ova_disk(path: str, workdir: str) -> str:
    """Copy the OVA's (first, largest) disk out of the tar, never trusting its names."""
    with tarfile.open(path) as tar:
        disks = _ova_disks(tar)
        if not disks:
            raise InputError(f"the OVA {path} holds no disk")
        src = tar.extractfile(disks[0])
        if src is None:
            raise InputError(f"cannot read {disks[0].name} from the OVA {path}")
        out = os.path.join(workdir, "ova-disk")
        with src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    log.info("extracted disk %s from the OVA", disks[0].name)
    return out


def prepare(path: str, hv_format: str, target: str, workdir: str) -> str:
    """The file OpenNebula should read: `path` itself or a converted copy in workdir."""
    source = extract_ova_disk(path, workdir) if is_ova(path, hv_format) else path
    fmt = detect_format(source)
    if hv_format and hv_format.lower() not in ("ova", fmt):
        log.warning("vmcatcher announces format %s, qemu-img finds %s; using %s",
                    hv_format, fmt, fmt)
    if fmt == target:
        return source
    out = os.path.join(workdir, "image." + target)
    log.info("converting %s from %s to %s", os.path.basename(path), fmt, target)
    run([qemu_img(), "convert", "-f", fmt, "-O", target, source, out])
    return out


def check_sha512(path: str, expected: Optional[str]) -> str:
    actual = sha512_file(path)
    if expected and actual != expected:
        raise HandlerError(f"sha512 of {path} does not match the image list: "
                           f"expected {expected[:16]}..., got {actual[:16]}...",
                           hint="the download is corrupt; vmcatcher will fetch it again")
    return actual
