"""The NFS ISO domain, as engine-setup offers it: a new domain directory (or an
existing domain accepted as it is), exported over NFS, with the iso/vfd images of
installed packages loaded into it.

    [setup.iso_domain]
    path = "/var/lib/exports/iso"            # required: the exported directory
    name = "ISO_DOMAIN"                      # required: the domain's name
    acl = "0.0.0.0/0.0.0.0(rw)"              # required: clients and options of the export
    packages = ["engine-iso-files"]          # installed packages whose *.iso/*.vfd are loaded
    nfs_ports = { MOUNTD_PORT = 892 }        # optional: fixed NFS ports (these override
                                             # the defaults below, other names are added)

What it does, each step only when it changes something (a re-run changes nothing):

- the domain, laid out as oVirt's ISO domains: `<path>/<uuid>/dom_md/` with
  `metadata` (CLASS=Iso, DESCRIPTION=<name>, SDUUID=<uuid>, TYPE=NFS, ...) and the
  empty ids/inbox/leases/outbox, and `<path>/<uuid>/images/11111111-1111-1111-1111-111111111111/`,
  owned by vdsm:kvm (36:36). A path that already holds an ISO domain (a
  `<uuid>/dom_md/metadata`) is accepted and left as it is; an empty directory gets
  a new domain; any other existing path is refused at validation;
- the export `<path> <acl>` in /etc/exports.d/<app>.exports; an entry for the same
  path in /etc/exports is moved out of it (the rest of that file is kept);
- the SELinux file context public_content_rw_t of `<path>(/.*)?` (semanage,
  restorecon -R) when the root is this machine's / and SELinux is enabled;
- fixed NFS ports in /etc/sysconfig/nfs (RQUOTAD_PORT=875, LOCKD_TCPPORT=32803,
  LOCKD_UDPPORT=32769, MOUNTD_PORT=892, STATD_PORT=662, STATD_OUTGOING_PORT=2020),
  other lines kept;
- rpcbind and nfs-server enabled (`systemctl --root`), and started with the
  exports re-read when the root is the running system. A unit the root does not
  have (nfs-utils not installed) is noted and recorded as wanted in the state
  registry (kind service, enabled false, wanted "enabled");
- every *.iso and *.vfd file of the listed packages (`rpm -ql`) copied into the
  images directory (0644, vdsm:kvm); identical files are not copied again.

Answer keys:

  SETUP_NFS/configure=bool:true  configure the NFS ISO domain on this host
  SETUP_NFS/path=path:DIR        the domain's directory (default: the recipe's path)
  SETUP_NFS/name=str:NAME        the domain's name (default: the recipe's name; letters,
                                 digits, '_' and '-', at most 50)
  SETUP_NFS/acl=str:ACL          clients and options of the export, as in exports(5)
                                 (default: the recipe's acl)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from installer import engine
from installer.bundle import sha256_file
from installer.engine import Stages, fsutil
from installer.engine.environment import DEFAULT
from installer.errors import InputError
from installer.plugins.importer.services import EnableService, is_enabled
from installer.plugins.setup import _config
from installer.restore.packages import rpm_root

KEYS = (
    engine.Key("SETUP_NFS/configure", bool, default=True,
               doc="configure an NFS ISO domain on this host"),
    engine.Key("SETUP_NFS/path", "path", default=None,
               doc="directory of the ISO domain; default: the recipe's path"),
    engine.Key("SETUP_NFS/name", str, default=None,
               doc="name of the ISO domain; default: the recipe's name"),
    engine.Key("SETUP_NFS/acl", str, default=None,
               doc="NFS export clients and options (exports(5)); default: the recipe's acl"),
)
NFS_PORTS = {"RQUOTAD_PORT": 875, "LOCKD_TCPPORT": 32803, "LOCKD_UDPPORT": 32769,
             "MOUNTD_PORT": 892, "STATD_PORT": 662, "STATD_OUTGOING_PORT": 2020}
SYSCONFIG = "/etc/sysconfig/nfs"
EXPORTS = "/etc/exports"
IMAGES = "11111111-1111-1111-1111-111111111111"  # oVirt's fixed image group of ISO domains
UNITS = ("rpcbind.service", "nfs-server.service")
VDSM, KVM = 36, 36
IMAGE_SUFFIXES = (".iso", ".vfd")
SELINUX_TYPE = "public_content_rw_t"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
ACL = re.compile(r"^[^\s()]+(\([^\s()]*\))?$|^\([^\s()]*\)$")
PORT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, {
        "path": (str, True), "name": (str, True), "acl": (str, True),
        "packages": (list, False), "nfs_ports": (dict, False)})
    checks = (("path", path_problem), ("name", name_problem), ("acl", acl_problem))
    for key, check in checks:
        if isinstance(table.get(key), str):
            problem = check(table[key])
            if problem:
                problems.append(f"{key}: {problem}")
    packages = table.get("packages", [])
    if isinstance(packages, list) and not all(isinstance(p, str) and p for p in packages):
        problems.append("packages: expected a list of package names")
    ports = table.get("nfs_ports", {})
    for name, value in sorted(ports.items()) if isinstance(ports, dict) else ():
        if not PORT_NAME.match(name):
            problems.append(f"nfs_ports.{name}: not a variable name (like MOUNTD_PORT)")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            problems.append(f"nfs_ports.{name}: {value!r} is not a port (1-65535)")
    return problems


def path_problem(value: str) -> Optional[str]:
    problem = _config.absolute(value)
    if problem:
        return problem
    if value == "/" or re.search(r"\s", value):
        return f"{value!r} cannot be exported (not / and no white space)"
    return None


def name_problem(value: str) -> Optional[str]:
    if not NAME.match(value):
        return f"{value!r} is not a domain name (letters, digits, '_' and '-'; at most 50)"
    return None


def acl_problem(value: str) -> Optional[str]:
    if not value.strip() or not all(ACL.match(part) for part in value.split()):
        return (f"{value!r} is not an export's clients and options "
                "(like 0.0.0.0/0.0.0.0(rw) or *(rw,sync))")
    return None


def metadata(name: str, sd_uuid: str, remote: str) -> bytes:
    """The dom_md/metadata of a new ISO domain (vdsm's KEY=VALUE lines, sorted, and
    the SHA-1 of the lines as its checksum)."""
    values = {"CLASS": "Iso", "DESCRIPTION": name, "IOOPTIMEOUTSEC": "1",
              "LEASERETRIES": "3", "LEASETIMESEC": "5", "LOCKPOLICY": "",
              "LOCKRENEWALINTERVALSEC": "5", "MASTER_VERSION": "0", "POOL_UUID": "",
              "REMOTE_PATH": remote, "ROLE": "Regular", "SDUUID": sd_uuid,
              "TYPE": "NFS", "VERSION": "0"}
    lines = [f"{k}={v}" for k, v in sorted(values.items())]
    checksum = hashlib.sha1("".join(lines).encode(), usedforsecurity=False).hexdigest()
    return ("\n".join([*lines, f"_SHA_CKSUM={checksum}"]) + "\n").encode()


def read_metadata(path: Path) -> Dict[str, str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _export_path(entry: str) -> str:
    """The exported directory of an /etc/exports entry (quoted, \\040 escapes)."""
    path = entry[1:].split('"', 1)[0] if entry.startswith('"') else entry.split(None, 1)[0]
    path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)
    return os.path.normpath(path) if path.startswith("/") else path


def without_export(text: str, path: str) -> Tuple[str, List[str]]:
    """`text` (an exports(5) file) without the entries of `path` (an entry may go
    on over lines ending with a backslash); comments and other entries are kept.
    Returns (new text, removed entries)."""
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    removed: List[str] = []
    i = 0
    while i < len(lines):
        entry = [lines[i]]
        while entry[-1].rstrip("\r\n").endswith("\\") and i + 1 < len(lines):
            i += 1
            entry.append(lines[i])
        i += 1
        first = entry[0].strip()
        if first and not first.startswith("#") and _export_path(first) == path:
            removed.append("".join(entry).rstrip("\n"))
        else:
            out.extend(entry)
    return "".join(out), removed


class Plugin(engine.PluginBase):
    KEYS = KEYS
    domain: Optional[str] = None   # uuid of the domain, new or accepted
    new_domain = False
    sources: Optional[List[Path]] = None  # host paths of the packages' images

    def _on(self) -> bool:
        return _config.configured(self, "iso_domain") and bool(self.env["SETUP_NFS/configure"])

    def _path(self) -> str:
        return str(self.env["SETUP_NFS/path"])

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.isodomain.ask",
                  condition=lambda self: _config.configured(self, "iso_domain"))
    def _ask(self) -> None:
        section = _config.load(self).section("iso_domain")
        for key, name in (("SETUP_NFS/path", "path"), ("SETUP_NFS/name", "name"),
                          ("SETUP_NFS/acl", "acl")):
            if self.env[key] is None:
                self.env.set(key, section[name], source=DEFAULT)
        if not self.dialog.ask("SETUP_NFS/configure", "Configure an NFS ISO domain on "
                               "this host"):
            return
        self.dialog.ask("SETUP_NFS/path", "Local ISO domain path")
        self.dialog.ask("SETUP_NFS/name", "Local ISO domain name")
        self.dialog.ask("SETUP_NFS/acl", "Local ISO domain ACL (NFS export clients and "
                        "options)")

    # -- validation: every check and the plan, before any change -----------------------
    @engine.event(stage=Stages.VALIDATION, name="setup.isodomain.check",
                  condition=lambda self: _config.configured(self, "iso_domain"))
    def _check(self) -> None:
        if not self.env["SETUP_NFS/configure"]:
            self.dialog.note("NFS ISO domain: not configured (SETUP_NFS/configure=false)")
            return
        for key, check in (("SETUP_NFS/path", path_problem), ("SETUP_NFS/name", name_problem),
                           ("SETUP_NFS/acl", acl_problem)):
            problem = check(str(self.env[key]))
            if problem:
                raise InputError(f"{key}: {problem}")
        self._find_domain()
        path = self._path()
        if self.new_domain:
            self.plan(f"ISO domain {self.env['SETUP_NFS/name']}: new, {path}/{self.domain} "
                      "(vdsm:kvm)")
        else:
            self.plan(f"ISO domain: existing {path}/{self.domain} accepted")
        for _src, dest in self._images():
            self.plan(f"ISO domain: load {dest.rsplit('/', 1)[1]}")
        for target, data, why in self._files():
            if _config.read_target(self, target) != data:
                self.plan(f"NFS: write {target} ({why})")
        live = _config.live_root(self)
        if live and fsutil.selinux_enabled():
            self.plan(f"SELinux: file context {SELINUX_TYPE} for {path}")
        for unit in UNITS:
            state = is_enabled(self.root, unit)
            if state == "not-found":
                self.dialog.note(f"NFS: {unit} is not installed in the root (install "
                                 "nfs-utils): enable it once it is")
            elif state == "disabled":
                self.plan(f"NFS: enable {unit}")

    def _find_domain(self) -> None:
        """The domain to use: an existing ISO domain under the path, or a new one in
        a missing or empty directory; anything else is refused."""
        path = self._path()
        host = self.resolve(path)
        self.new_domain, self.domain = True, None
        if not os.path.lexists(host):
            self.domain = str(uuid.uuid4())
            return
        if not host.is_dir():
            raise InputError(f"SETUP_NFS/path: {path} exists and is not a directory")
        found = sorted(d for d in host.iterdir() if (d / "dom_md" / "metadata").is_file())
        if not found:
            if any(host.iterdir()):
                raise InputError(f"SETUP_NFS/path: {path} is not empty and holds no storage "
                                 "domain (no <uuid>/dom_md/metadata)",
                                 hint="give an empty or missing directory, or one that "
                                      "holds an ISO domain")
            self.domain = str(uuid.uuid4())
            return
        kinds = {d.name: read_metadata(d / "dom_md" / "metadata").get("CLASS", "?")
                 for d in found}
        iso = [name for name, kind in kinds.items() if kind == "Iso"]
        if len(iso) != 1:
            shown = ", ".join(f"{n} ({k})" for n, k in sorted(kinds.items()))
            raise InputError(f"SETUP_NFS/path: {path} holds {shown}: not one ISO domain")
        self.new_domain, self.domain = False, iso[0]
        name = read_metadata(host / iso[0] / "dom_md" / "metadata").get("DESCRIPTION")
        if name != self.env["SETUP_NFS/name"]:
            self.dialog.note(f"ISO domain: the existing domain {name!r} in {path} is kept "
                             f"as it is (SETUP_NFS/name={self.env['SETUP_NFS/name']} is "
                             "not applied)")

    def _images(self) -> List[Tuple[Path, str]]:
        """(host path of the source, target path in the domain) of each image that
        is not there already as it would be copied."""
        if self.sources is None:
            self.sources = []
            for package in _config.load(self).section("iso_domain").get("packages", []):
                proc = rpm_root(self.root, ["-ql", package], check=False)
                if proc.returncode != 0:
                    self.dialog.note(f"ISO domain: package {package} is not installed: "
                                     "no images from it")
                    continue
                self.sources += [self.resolve(line) for line in proc.stdout.splitlines()
                                 if line.lower().endswith(IMAGE_SUFFIXES)]
        images = f"{self._path()}/{self.domain}/images/{IMAGES}"
        return [(src, f"{images}/{src.name}") for src in self.sources
                if src.is_file() and not self._same(src, f"{images}/{src.name}")]

    def _same(self, src: Path, dest: str) -> bool:
        host = self.resolve(dest)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        return (st.st_size == src.stat().st_size and (st.st_mode & 0o7777) == 0o644
                and (st.st_uid, st.st_gid) == (VDSM, KVM)
                and sha256_file(host) == sha256_file(src))

    def _files(self) -> List[Tuple[str, bytes, str]]:
        """(target, content, why) of the NFS configuration files as they should be."""
        cfg = _config.load(self)
        path, acl = self._path(), str(self.env["SETUP_NFS/acl"])
        export = (f"# The ISO domain {self.env['SETUP_NFS/name']}, written by `install "
                  f"setup`\n{path} {acl}\n").encode()
        out = [(f"/etc/exports.d/{cfg.app}.exports", export, "export")]
        old = _config.read_target(self, EXPORTS)
        if old is not None:
            text, removed = without_export(old.decode("utf-8", "replace"), path)
            if removed:
                out.append((EXPORTS, text.encode(), "moved to exports.d: " + "; ".join(removed)))
        ports = dict(NFS_PORTS, **cfg.section("iso_domain").get("nfs_ports", {}))
        old = _config.read_target(self, SYSCONFIG)
        text = _config.set_assignments((old or b"").decode("utf-8", "replace"),
                                       [(k, str(v)) for k, v in ports.items()], sep="=")
        out.append((SYSCONFIG, text.encode(), "NFS ports"))
        return out

    # -- the changes ------------------------------------------------------------------
    @engine.event(stage=Stages.MISC, name="setup.isodomain.apply",
                  condition=lambda self: not self.dry_run and self._on())
    def _apply(self) -> None:
        live = _config.systemd_running(self)
        append = self.transaction.append
        files = [(t, d, w) for t, d, w in self._files() if _config.read_target(self, t) != d]
        if live and files:  # undone last: the restored exports are read again
            append(engine.CallbackElement("re-read NFS exports on rollback", do=lambda: None,
                                          undo=lambda: self.run(["exportfs", "-r"])))
        self._make_domain()
        for src, dest in self._images():
            if os.path.lexists(self.resolve(dest)):
                append(engine.FileRemove(dest))
            append(self._copy(src, dest))
        self._selinux()
        for target, data, why in files:
            self.log.info("NFS: %s: %s", target, why)
            owner = None if _config.read_target(self, target) is not None else "root"
            append(engine.FileWrite(target, data, owner=owner, group=owner))
        self._services(live)
        if live and files:
            append(engine.CallbackElement("exportfs -r", do=lambda: self.run(["exportfs", "-r"]),
                                          undo=lambda: None))

    def _make_domain(self) -> None:
        path, sd = self._path(), f"{self._path()}/{self.domain}"
        append = self.transaction.append
        host = self.resolve(path)
        if not host.parent.is_dir():
            append(engine.MakeDirs(os.path.dirname(path), mode=0o755, owner="root",
                                   group="root"))
        if not host.is_dir():
            append(engine.MakeDirs(path, mode=0o755, owner=VDSM, group=KVM))
        elif self.new_domain and (host.stat().st_uid, host.stat().st_gid) != (VDSM, KVM):
            append(_chown(host, VDSM, KVM))
        if not self.resolve(f"{sd}/images/{IMAGES}").is_dir():
            append(engine.MakeDirs(f"{sd}/images/{IMAGES}", mode=0o755, owner=VDSM, group=KVM))
        if not self.new_domain:
            return
        append(engine.MakeDirs(f"{sd}/dom_md", mode=0o755, owner=VDSM, group=KVM))
        remote = f"{self.env['SETUP/fqdn']}:{path}"
        data = metadata(str(self.env["SETUP_NFS/name"]), str(self.domain), remote)
        append(engine.FileWrite(f"{sd}/dom_md/metadata", data, mode=0o644, owner=VDSM,
                                group=KVM))
        for name in ("ids", "inbox", "leases", "outbox"):
            append(engine.FileWrite(f"{sd}/dom_md/{name}", b"", mode=0o660, owner=VDSM,
                                    group=KVM))

    def _copy(self, src: Path, dest: str) -> engine.CallbackElement:
        """Copy an image (streamed: ISO files are large) into place, atomically."""
        host = self.resolve(dest)

        def do() -> None:
            tmp = host.with_name(f".satchel-{os.getpid()}-{host.name}.tmp")
            try:
                shutil.copyfile(src, tmp)
                os.chown(tmp, VDSM, KVM)
                os.chmod(tmp, 0o644)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, host)
            finally:
                if tmp.exists():
                    tmp.unlink()
            fsutil.fsync_dir(host.parent)

        def undo() -> None:
            if os.path.lexists(host):
                host.unlink()
                fsutil.fsync_dir(host.parent)

        return engine.CallbackElement(
            f"load {src.name} into the ISO domain", do=do, undo=undo, abort=undo,
            records=[{"kind": "file", "path": dest, "how": "created",
                      "sha256": sha256_file(src)}])

    def _selinux(self) -> None:
        path = self._path()
        if not _config.live_root(self) or not fsutil.selinux_enabled():
            self.log.info("SELinux file context of %s skipped: %s", path,
                          "the root is not this machine's /" if not _config.live_root(self)
                          else "SELinux is not enabled")
            return
        if shutil.which("semanage") is None:
            self.dialog.note(f"SELinux: semanage is not installed: set the file context "
                             f"{SELINUX_TYPE} of {path} by hand")
            return
        spec = f"{path}(/.*)?"
        local = self.run(["semanage", "fcontext", "-l", "-C"]).stdout or ""
        if not any(line.split()[:1] == [spec] for line in local.splitlines()):
            self.transaction.append(engine.CallbackElement(
                f"SELinux file context {SELINUX_TYPE} for {spec}",
                do=lambda: self.run(["semanage", "fcontext", "-a", "-t", SELINUX_TYPE, spec]),
                undo=lambda: self.run(["semanage", "fcontext", "-d", spec])))
            self.transaction.append(engine.CallbackElement(
                f"restorecon -R {path}", do=lambda: self.run(["restorecon", "-R", path]),
                undo=lambda: None))

    def _services(self, live: bool) -> None:
        recorded = self.state.services(self.action)
        for unit in UNITS:
            state = is_enabled(self.root, unit)
            if state == "not-found":
                if recorded.get(unit, {}).get("wanted") != "enabled":
                    self.transaction.append(engine.CallbackElement(
                        f"{unit}: wanted enabled (not installed in the root)",
                        do=lambda: None, undo=lambda: None,
                        records=[{"kind": "service", "name": unit, "enabled": False,
                                  "wanted": "enabled"}]))
                continue
            active = live and self.run(["systemctl", "is-active", "--quiet", unit],
                                       check=False).returncode == 0
            if state == "disabled" or (live and not active):
                self.transaction.append(EnableService(unit, start=live and not active))


def _chown(host: Path, uid: int, gid: int) -> engine.CallbackElement:
    """Give an existing (empty) domain directory to vdsm:kvm; undo gives it back."""
    st = host.stat()
    return engine.CallbackElement(
        f"chown {host.name} to {uid}:{gid}", do=lambda: os.chown(host, uid, gid),
        undo=lambda: os.chown(host, st.st_uid, st.st_gid))
