"""Register the OpenNebula image handler with vmcatcher (`install vmcatcher register`).

Writes, each only when its content differs from what is there already (so a
second run changes nothing):

- /etc/satchel/vmcatcher.conf: the handler's INI config, in the format that
  installer/vmcatcher/config.py reads (mode 0644: it holds no secret);
- the credentials file (VMCATCHER/credentialsFile): one line `user:password`,
  mode 0600, owned by oneadmin when the target's /etc/passwd has that user, else
  by root; its sha256 is not recorded in the state registry;
- vmcatcher's environment file (VMCATCHER/envFile): VMCATCHER_CACHE_EVENT set to
  the handler command, and the three cache directory variables, every other line
  kept;
- vmcatcher's cache directory and its `partial` (downloads in progress) and
  `expired` children, as vmcatcher lays them out, when absent (root, 0755).
"""

from __future__ import annotations

import os
import pathlib
import stat
from typing import Callable, List, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.errors import InputError
from installer.plugins.vmcatcher import _checks, _envfile

CONFIG = "/etc/satchel/vmcatcher.conf"
HANDLER = "/usr/libexec/satchel/install vmcatcher handle"
ONEADMIN = "oneadmin"
DOWNLOAD, EXPIRE = "partial", "expired"

KEYS = (
    engine.Key("VMCATCHER/endpoint", str, required=True,
               doc="OpenNebula XML-RPC endpoint (http:// or https:// URL)"),
    engine.Key("VMCATCHER/credentialsFile", "path", default="/etc/satchel/vmcatcher.auth",
               doc="Credentials file the handler reads (user:password, mode 0600)"),
    engine.Key("VMCATCHER/user", str, default="oneadmin", doc="OpenNebula user"),
    engine.Key("VMCATCHER/password", str, secret=True, required=True,
               doc="OpenNebula password (written only into the credentials file)"),
    engine.Key("VMCATCHER/datastore", str, default="default",
               doc="OpenNebula image datastore for new images"),
    engine.Key("VMCATCHER/imageFormat", str, default="raw", choices=("raw", "qcow2"),
               doc="Disk format OpenNebula gets (images are converted with qemu-img)"),
    engine.Key("VMCATCHER/firstVersionPermissions", str, default="600",
               doc="Permissions of the first version of an image (3 octal digits)"),
    engine.Key("VMCATCHER/readyTimeout", int, default=600,
               doc="Seconds to wait for a new image to become READY"),
    engine.Key("VMCATCHER/envFile", "path", default="/etc/sysconfig/vmcatcher",
               doc="vmcatcher's environment file, sourced by its cron job"),
    engine.Key("VMCATCHER/cacheDir", "path", default="/var/lib/vmcatcher/cache",
               doc="vmcatcher's image cache (partial/ and expired/ inside it)"),
)

# (description for the plan and the log, function appending the element)
Change = Tuple[str, Callable[[], object]]




class Plugin(engine.PluginBase):
    KEYS = KEYS

    @engine.event(stage=Stages.CUSTOMIZATION, name="vmcatcher.ask")
    def _ask(self) -> None:
        self.dialog.ask("VMCATCHER/endpoint", "OpenNebula XML-RPC endpoint URL")
        self.dialog.ask("VMCATCHER/user", "OpenNebula user")
        self.dialog.ask("VMCATCHER/password", "OpenNebula password")
        self.dialog.ask("VMCATCHER/datastore", "OpenNebula image datastore")

    @engine.event(stage=Stages.VALIDATION, name="vmcatcher.validate",
                  priority=engine.PRIO_FIRST)
    def _validate(self) -> None:
        env = self.env
        checks = (
            ("VMCATCHER/endpoint", _checks.endpoint(env["VMCATCHER/endpoint"])),
            ("VMCATCHER/credentialsFile", _checks.target_path(env["VMCATCHER/credentialsFile"])),
            ("VMCATCHER/user", _checks.name(env["VMCATCHER/user"])),
            ("VMCATCHER/password", _checks.password(env["VMCATCHER/password"])),
            ("VMCATCHER/datastore", _checks.name(env["VMCATCHER/datastore"])),
            ("VMCATCHER/imageFormat", _checks.image_format(env["VMCATCHER/imageFormat"])),
            ("VMCATCHER/firstVersionPermissions",
             _checks.permissions(env["VMCATCHER/firstVersionPermissions"])),
            ("VMCATCHER/readyTimeout", _checks.timeout(env["VMCATCHER/readyTimeout"])),
            ("VMCATCHER/envFile", _checks.target_path(env["VMCATCHER/envFile"])),
            ("VMCATCHER/cacheDir", _checks.target_path(env["VMCATCHER/cacheDir"], shell=True)),
        )
        problems = [f"{key}: {message}" for key, message in checks if message]
        bad = {key for key, message in checks if message}
        for key in ("VMCATCHER/credentialsFile", "VMCATCHER/envFile"):
            if key not in bad and self.resolve(str(env[key])).is_dir():
                problems.append(f"{key}: {env[key]} is a directory")
        if "VMCATCHER/cacheDir" not in bad:
            for d in self._cache_dirs():
                host = self.resolve(d)
                if os.path.lexists(host) and not host.is_dir():
                    problems.append(f"VMCATCHER/cacheDir: {d} exists and is not a directory")
        if problems:
            raise InputError("\n".join(problems),
                             hint="fix the values (--set KEY=VALUE or the answer file)")
        for text, _ in self._changes():
            self.plan(text)

    @engine.event(stage=Stages.MISC, name="vmcatcher.register")
    def _register(self) -> None:
        changes = self._changes()
        if not changes:
            self.log.info("vmcatcher registration: nothing changed, everything is in place")
            return
        for _, append in changes:
            append()
        if not self.resolve(HANDLER.split()[0]).exists():
            self.log.warning("%s is not on the target yet: vmcatcher's events fail until "
                             "the installer is there (install import leaves it)",
                             HANDLER.split()[0])

    # -- what to change -------------------------------------------------------------
    def _cache_dirs(self) -> List[str]:
        cache = str(self.env["VMCATCHER/cacheDir"]).rstrip("/") or "/"
        return [cache, f"{cache}/{DOWNLOAD}", f"{cache}/{EXPIRE}"]

    def _owner(self) -> Tuple[int, int, str]:
        """uid, gid and name of oneadmin from the target's /etc/passwd, else root."""
        passwd = self.resolve("/etc/passwd")
        try:
            lines = passwd.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == ONEADMIN:
                try:
                    return int(fields[2]), int(fields[3]), ONEADMIN
                except ValueError:
                    break
        return 0, 0, "root"

    def config_text(self) -> str:
        env = self.env
        values = (
            ("endpoint", env["VMCATCHER/endpoint"]),
            ("credentials_file", str(env["VMCATCHER/credentialsFile"])),
            ("datastore", env["VMCATCHER/datastore"]),
            ("image_format", env["VMCATCHER/imageFormat"]),
            ("first_version_permissions", env["VMCATCHER/firstVersionPermissions"]),
            ("ready_timeout", str(env["VMCATCHER/readyTimeout"])),
        )
        return ("# Written by `install vmcatcher register`; read by the vmcatcher event\n"
                "# handler (`install vmcatcher handle`). Re-run the registration to change it.\n"
                "[vmcatcher]\n" + "".join(f"{k} = {v}\n" for k, v in values))

    def _env_variables(self) -> List[Tuple[str, str]]:
        cache, download, expire = self._cache_dirs()
        return [("VMCATCHER_CACHE_EVENT", HANDLER), ("VMCATCHER_CACHE_DIR_CACHE", cache),
                ("VMCATCHER_CACHE_DIR_DOWNLOAD", download),
                ("VMCATCHER_CACHE_DIR_EXPIRE", expire)]

    def _changes(self) -> List[Change]:
        """Only the elements whose result differs from what the target holds."""
        out: List[Change] = []
        tx: engine.Transaction = self.transaction

        conf = self.config_text().encode("utf-8")
        if _read(self.resolve(CONFIG)) != conf:
            out.append((f"write the handler's config {CONFIG}", lambda: tx.append(
                engine.FileWrite(CONFIG, conf, step_id="vmcatcher.config"))))

        auth = str(self.env["VMCATCHER/credentialsFile"])
        uid, gid, who = self._owner()
        secret = f"{self.env['VMCATCHER/user']}:{self.env['VMCATCHER/password']}\n"
        if not _same(self.resolve(auth), secret.encode("utf-8"), 0o600, uid, gid):
            data = secret.encode("utf-8")
            out.append((f"write the credentials file {auth} (mode 0600, owner {who})",
                        lambda: tx.append(engine.SecretFileWrite(auth, data, mode=0o600, owner=uid,
                                                          group=gid,
                                                          step_id="vmcatcher.credentials"))))

        env_file = str(self.env["VMCATCHER/envFile"])
        old_bytes = _read(self.resolve(env_file))
        old = (old_bytes or b"").decode("utf-8", "surrogateescape")
        new = _envfile.render(old, self._env_variables()).encode("utf-8", "surrogateescape")
        if old_bytes != new:
            out.append((f"set VMCATCHER_CACHE_EVENT to `{HANDLER}` and the cache "
                        f"directories in {env_file}", lambda: tx.append(
                            engine.FileWrite(env_file, new, step_id="vmcatcher.envfile"))))

        for d in self._cache_dirs():
            if not self.resolve(d).is_dir():
                out.append((f"create vmcatcher's directory {d}", _make_dir(tx, d)))
        return out


def _make_dir(tx: engine.Transaction, path: str) -> Callable[[], object]:
    return lambda: tx.append(
        engine.MakeDirs(path, mode=0o755, step_id=f"vmcatcher.dir:{path}"))


def _read(host: pathlib.Path) -> Optional[bytes]:
    try:
        return host.read_bytes() if host.is_file() else None
    except OSError:
        return None


def _same(host: pathlib.Path, data: bytes, mode: int, uid: int, gid: int) -> bool:
    try:
        st = os.stat(host)
    except OSError:
        return False
    return (stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode
            and (st.st_uid, st.st_gid) == (uid, gid) and _read(host) == data)
