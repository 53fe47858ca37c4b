"""A site: a tmp root with the handler's config and credentials, vmcatcher's cache
directories, and the OpenNebula simulator with a user alice in group scientists."""

import hashlib
import os
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from installer.vmcatcher.__main__ import main
from tests.onesim.fixture import onesim  # noqa: F401  (the fixture, used below)
from tests.onesim.sim import OneSim

PASSWORD = "s3cret-Pa55"  # must never reach the log
IDENT = "93084776-1176-4849-95dc-cc7a15f2ce97"


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


class Site:
    def __init__(self, root: Path, sim: OneSim) -> None:
        self.root, self.sim = root, sim
        self.cache = root / "var/lib/vmcatcher/cache"
        self.expire = root / "var/lib/vmcatcher/expired"
        self.cache.mkdir(parents=True)
        self.expire.mkdir(parents=True)
        sim.users[0].password = PASSWORD
        self.sim.add_group("scientists")
        self.alice = sim.add_user("alice", "alicepw", group="scientists")
        self.scientists = sim.gid_of("scientists")
        self.configure()

    @property
    def log(self) -> str:
        path = self.root / "var/log/satchel/vmcatcher.log"
        return path.read_text() if path.exists() else ""

    def configure(self, **overrides: str) -> None:
        keys = {"endpoint": self.sim.endpoint, "credentials_file": "/etc/satchel/one_auth",
                "datastore": "default", "image_format": "raw",
                "first_version_permissions": "600", "ready_timeout": "5",
                "poll_interval": "0.01", "lock_timeout": "5", **overrides}
        etc = self.root / "etc/satchel"
        etc.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{k} = {v}\n" for k, v in keys.items())
        (etc / "vmcatcher.conf").write_text("[vmcatcher]\n" + body)
        auth = etc / "one_auth"
        auth.write_text(f"oneadmin:{PASSWORD}\n")
        auth.chmod(0o600)

    def cached(self, data: bytes, name: str = IDENT) -> bytes:
        (self.cache / name).write_bytes(data)
        return data

    def event(self, kind: str = "AvailablePostfix", data: bytes = b"",
              identifier: str = IDENT, **extra: str) -> Dict[str, str]:
        env = {"VMCATCHER_EVENT_TYPE": kind, "VMCATCHER_EVENT_DC_IDENTIFIER": identifier,
               "VMCATCHER_EVENT_FILENAME": identifier, "VMCATCHER_EVENT_HV_FORMAT": "raw",
               "VMCATCHER_EVENT_DC_TITLE": "Test image",
               "VMCATCHER_CACHE_DIR_CACHE": str(self.cache),
               "VMCATCHER_CACHE_DIR_EXPIRE": str(self.expire)}
        if data:
            env["VMCATCHER_EVENT_SL_CHECKSUM_SHA512"] = sha512(data)
        env.update(extra)
        return env

    def run(self, env: Dict[str, str]) -> int:
        return main(["--root", str(self.root)], env)

    def allocations(self) -> List[tuple]:
        return self.sim.method_calls("one.image.allocate")

    def work_dirs(self) -> List[str]:
        work = self.root / "var/lib/satchel/vmcatcher"
        return os.listdir(work) if work.exists() else []


@pytest.fixture
def site(tmp_path: Path, onesim: OneSim) -> Iterator[Site]:  # noqa: F811
    yield Site(tmp_path, onesim)
