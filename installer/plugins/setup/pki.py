"""PKI: a certificate authority and service certificates made with openssl, as
engine-setup makes them; the CA's fingerprint and the SSH host key's printed.

    [setup.pki]
    dir = "/etc/pki/engine"            # required
    organization = "Example Org"       # default of SETUP_PKI/organization
    key_size = 2048                    # default of SETUP_PKI/keySize
    validity_days = 3650               # default of SETUP_PKI/validityDays
    certs = ["engine", "apache"]       # required: service certificates (names: a-z 0-9 _ -)
    ssh_host_key = "/etc/ssh/ssh_host_rsa_key.pub"   # optional: its fingerprint is printed

    [[setup.pki.extract]]              # a password-less copy of a service key for a consumer
    cert = "apache"                    # required: one of certs
    to = "/etc/pki/engine/keys/apache.key.nopass"    # required
    owner = "root"                     # default root (a user of the target)
    group = "root"                     # default root
    mode = "0600"                      # default "0600" (octal)

A copy an earlier setup extracted that the recipe no longer names is removed.

Layout under `dir` (root-owned; `ca_cert`, `cert_path` and `key_path` give these
paths to other plugins):

    ca.pem                        the CA certificate (0644)
    serial.txt                    the next serial number, hex (0644)
    certs/<name>.cer              service certificates, PEM (0644)
    keys/<name>.p12               PKCS#12 keystores: certificate, key and CA, protected
                                  by the keystore password (0600; keys/ is 0755 so that
                                  extracted copies there reach their consumers)
    private/ (0700)  ca.key, <name>.key   private keys, PEM, no password (0600)
                     keystore.password    the keystore password, one line (0600)

The CA is RSA (SETUP_PKI/keySize bits), self-signed, subject /O=<organization>/
CN=<SETUP/fqdn>.<five random digits>, valid SETUP_PKI/validityDays days. Service
certificates: subject /O=<organization>/CN=<SETUP/fqdn>, subjectAltName DNS:<fqdn>,
serverAuth and clientAuth, signed by the CA with serials from serial.txt
(starting at 1000 hex).

Re-runs: an existing CA (ca.pem and private/ca.key) is reused, never regenerated;
one whose key does not match its certificate, or that has expired, or only half of
it, is refused in validation before any change. A service certificate is kept
when it is signed by this CA, names SETUP/fqdn, matches its key and is valid for
more than min(30 days, validityDays/2); otherwise it is issued again (for its
existing key, when that is readable). A keystore is kept when it opens with the
keystore password and holds that certificate, key and CA. A re-run with nothing
new writes nothing. Files are made in a private temporary directory and written
through the transaction, so a rollback removes them; the registry records them
with their sha256 (the password file without it) and ca.pem with its fingerprint.

The CA fingerprint (SHA-256 of the certificate's DER, colon hex as openssl prints
it) and the SSH host key fingerprint (SHA256:base64, as ssh-keygen prints it) are
printed and logged at the end of every run.

Answer keys:

  SETUP_PKI/organization=str:ORG     organization of a new CA and of certificates:
                                     1-64 characters, no '/', '\\' or control
                                     character; default: the recipe's, else the
                                     domain of SETUP/fqdn; asked only when there is
                                     no CA yet
  SETUP_PKI/keySize=int:2048         RSA bits of new keys: 2048 to 16384, a multiple
                                     of 1024 (default: the recipe's key_size)
  SETUP_PKI/validityDays=int:3650    days a new CA or certificate is valid: 1 to 36500
                                     (default: the recipe's validity_days)
  SETUP_PKI/keystorePassword=str:PW  (secret) password of the keystores, 6 to 1023
                                     characters, no control character; default: the
                                     one in private/keystore.password, else generated.
                                     Another value re-exports every keystore.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT, PLUGIN
from installer.engine.paths import gid_of, uid_of
from installer.errors import InputError, RefusedError
from installer.plugins.hooks._elements import unchanged
from installer.plugins.setup import _config
from installer.plugins.setup._pkitool import (
    CONFIG,
    OpenSSL,
    cert_fingerprint,
    pem_ders,
    ssh_fingerprint,
    subject,
)
from installer.plugins.setup._records import RecordedFileWrite

ORG, KEY_SIZE = "SETUP_PKI/organization", "SETUP_PKI/keySize"
VALIDITY, PASSWORD = "SETUP_PKI/validityDays", "SETUP_PKI/keystorePassword"
KEYS = (
    engine.Key(ORG, str, default=None,
               doc="organization (O=) of a new CA and of the certificates; default: the "
                   "recipe's organization, else the domain of SETUP/fqdn"),
    engine.Key(KEY_SIZE, int, default=2048,
               doc="RSA bits of new keys, 2048-16384 and a multiple of 1024 (default: "
                   "the recipe's key_size)"),
    engine.Key(VALIDITY, int, default=3650,
               doc="days a new CA or certificate is valid, 1-36500 (default: the "
                   "recipe's validity_days)"),
    engine.Key(PASSWORD, str, secret=True, default=None,
               doc="password of the PKCS#12 keystores, 6-1023 characters (default: the "
                   "one in <dir>/private/keystore.password, else generated)"),
)
SPEC = {"dir": (str, True), "organization": (str, False), "key_size": (int, False),
        "validity_days": (int, False), "certs": (list, True), "ssh_host_key": (str, False),
        "extract": (list, False)}
EXTRACT_SPEC = {"cert": (str, True), "to": (str, True), "owner": (str, False),
                "group": (str, False), "mode": (str, False)}
CERT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
USER_NAME = re.compile(r"^([a-z_][a-z0-9_.-]{0,31}\$?|[0-9]+)$")
MODE = re.compile(r"^0?[0-7]{3}$")
DAY = 86400
EXTRACTED = "setup.pki.extract"  # in the state record of a copy: found again to remove it
FIRST_SERIAL = 0x1000


# -- the layout (other plugins call these) -------------------------------------------------

def pki_dir(cfg: _config.SetupConfig) -> str:
    return str(cfg.section("pki")["dir"]).rstrip("/") or "/"


def ca_cert(cfg: _config.SetupConfig) -> str:
    """The CA certificate (PEM)."""
    return f"{pki_dir(cfg)}/ca.pem"


def ca_key(cfg: _config.SetupConfig) -> str:
    return f"{pki_dir(cfg)}/private/ca.key"


def cert_path(cfg: _config.SetupConfig, name: str) -> str:
    """A service certificate (PEM)."""
    return f"{pki_dir(cfg)}/certs/{name}.cer"


def key_path(cfg: _config.SetupConfig, name: str) -> str:
    """A service certificate's private key (PEM, no password, 0600 root)."""
    return f"{pki_dir(cfg)}/private/{name}.key"


def keystore_path(cfg: _config.SetupConfig, name: str) -> str:
    return f"{pki_dir(cfg)}/keys/{name}.p12"


def password_path(cfg: _config.SetupConfig) -> str:
    return f"{pki_dir(cfg)}/private/keystore.password"


def serial_path(cfg: _config.SetupConfig) -> str:
    return f"{pki_dir(cfg)}/serial.txt"


# -- checks --------------------------------------------------------------------------------

def org_problem(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        return "empty"
    if value != value.strip() or len(value) > 64:
        return f"{value!r} has leading or trailing blanks or more than 64 characters"
    if any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"{value!r} contains '/', '\\' or a control character (such as a newline)"
    return None


def key_size_problem(value: Any) -> Optional[str]:
    if not 2048 <= value <= 16384 or value % 1024:
        return f"{value} is not allowed (2048 to 16384 bits, a multiple of 1024)"
    return None


def validity_problem(value: Any) -> Optional[str]:
    if not 1 <= value <= 36500:
        return f"{value} is not allowed (1 to 36500 days)"
    return None


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, SPEC)
    if problems:
        return problems
    bad_dir = _config.absolute(table["dir"])
    if bad_dir:
        problems.append(f"dir: {bad_dir}")
    for key, check in (("organization", org_problem), ("key_size", key_size_problem),
                       ("validity_days", validity_problem)):
        if key in table:
            problem = check(table[key])
            if problem:
                problems.append(f"{key}: {problem}")
    names = table["certs"]
    if not names:
        problems.append("certs: empty (name at least one service certificate)")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not CERT_NAME.match(name) or name == "ca":
            problems.append(f"certs[{i}]: {name!r} is not a certificate name (a-z, 0-9, "
                            "'_', '-', starting with a letter; not \"ca\")")
        elif names.index(name) != i:
            problems.append(f"certs[{i}]: {name!r} is named twice")
    if "ssh_host_key" in table:
        where = _config.absolute(table["ssh_host_key"])
        if where:
            problems.append(f"ssh_host_key: {where}")
    if not bad_dir:
        problems += _check_extracts(table)
    return problems


def _check_extracts(table: Mapping[str, Any]) -> List[str]:
    problems: List[str] = []
    cfg = _config.SetupConfig({"app": "x", "pki": table}, "check")
    names = [n for n in table["certs"] if isinstance(n, str)]
    ours = {ca_cert(cfg), ca_key(cfg), serial_path(cfg), password_path(cfg)}
    ours |= {f(cfg, n) for n in names for f in (cert_path, key_path, keystore_path)}
    seen: Set[str] = set()
    for i, entry in enumerate(table.get("extract", [])):
        at = f"extract[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{at}: expected a table ([[setup.pki.extract]])")
            continue
        found = _config.check_table(entry, EXTRACT_SPEC)
        problems += [f"{at}.{p}" for p in found]
        if found:
            continue
        if entry["cert"] not in names:
            problems.append(f"{at}.cert: {entry['cert']!r} is not one of certs")
        to = entry["to"]
        where = _config.absolute(to)
        if where:
            problems.append(f"{at}.to: {where}")
        elif to in ours or to in seen:
            problems.append(f"{at}.to: {to} is one of the PKI's own files or named twice")
        seen.add(to)
        for key in ("owner", "group"):
            if key in entry and not USER_NAME.match(entry[key]):
                problems.append(f"{at}.{key}: {entry[key]!r} is not a user or group name")
        if "mode" in entry and not MODE.match(entry["mode"]):
            problems.append(f"{at}.mode: {entry['mode']!r} is not an octal mode like \"0600\"")
    return problems


# -- what a run changes ----------------------------------------------------------------------

@dataclass
class Work:
    """What validation found to do (the misc event does it)."""

    new_ca: bool = False
    dirs: List[Tuple[str, int]] = field(default_factory=list)
    new_keys: List[str] = field(default_factory=list)
    issue: Dict[str, str] = field(default_factory=dict)    # name -> why
    export: Dict[str, str] = field(default_factory=dict)   # name -> why
    write_password: bool = False
    next_serial: int = FIRST_SERIAL
    rewrite: List[Tuple[str, int]] = field(default_factory=list)  # kept content, mode fixed
    extracts: List[Dict[str, Any]] = field(default_factory=list)
    stale: List[str] = field(default_factory=list)  # copies the recipe no longer names

    def empty(self) -> bool:
        return not (self.new_ca or self.dirs or self.new_keys or self.issue or self.export
                    or self.write_password or self.rewrite or self.extracts or self.stale)


def _text(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace")


def _extract_mode(entry: Mapping[str, Any]) -> int:
    return int(str(entry.get("mode", "0600")), 8)


class Plugin(engine.PluginBase):
    KEYS = KEYS
    work: Optional[Work] = None

    def _cfg(self) -> _config.SetupConfig:
        return _config.load(self)

    def _tool(self) -> OpenSSL:
        return OpenSSL(self.run)

    # -- customization: defaults from the recipe, the organization, the password ---------
    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.pki.ask",
                  condition=lambda self: _config.configured(self, "pki"))
    def _ask(self) -> None:
        cfg = self._cfg()
        section = cfg.section("pki")
        for key, name in ((ORG, "organization"), (KEY_SIZE, "key_size"),
                          (VALIDITY, "validity_days")):
            if self.env.source(key) == DEFAULT and name in section:
                self.env.set(key, section[name], source=DEFAULT)
        if self.env[ORG] is None:
            fqdn = str(self.env["SETUP/fqdn"])
            self.env.set(ORG, fqdn.partition(".")[2] or fqdn, source=DEFAULT)
        if not any(os.path.lexists(self.resolve(p)) for p in (ca_cert(cfg), ca_key(cfg))):
            self.dialog.ask(ORG, "Organization name for the certificate authority")
        if not self.env.answered(PASSWORD):
            stored = _config.read_target(self, password_path(cfg))
            text = stored.decode("utf-8", "replace").rstrip("\n") if stored else ""
            self.env.set(PASSWORD, text or secrets.token_urlsafe(24), source=PLUGIN)

    # -- validation: answers, the existing CA, what to do --------------------------------
    @engine.event(stage=Stages.VALIDATION, name="setup.pki.check",
                  condition=lambda self: _config.configured(self, "pki"))
    def _check(self) -> None:
        cfg = self._cfg()
        self._check_answers(cfg)
        engine.check_tool("openssl", hint="install openssl (the PKI is made with it)")
        self.work = self._survey(cfg)
        self._plan(cfg, self.work)

    def _check_answers(self, cfg: _config.SetupConfig) -> None:
        env = self.env
        problems = [f"{key}: {p}" for key, p in (
            (ORG, org_problem(env[ORG])), (KEY_SIZE, key_size_problem(env[KEY_SIZE])),
            (VALIDITY, validity_problem(env[VALIDITY]))) if p]
        password = env[PASSWORD] or ""
        if not 6 <= len(password) <= 1023 or any(ord(c) < 32 or ord(c) == 127
                                                 for c in password):
            problems.append(f"{PASSWORD}: not allowed (6 to 1023 characters, no control "
                            "character such as a newline)")
        for i, entry in enumerate(cfg.section("pki").get("extract", [])):
            for key, lookup in (("owner", uid_of), ("group", gid_of)):
                try:
                    lookup(self.root, entry.get(key, "root"))
                except InputError as exc:
                    problems.append(f"[setup.pki] extract[{i}].{key}: {exc.message}")
        if problems:
            raise InputError("\n".join(problems),
                             hint="fix the values (--set KEY=VALUE, the answer file or the "
                                  "recipe); nothing was changed")

    def _check_ca(self, cfg: _config.SetupConfig, tool: OpenSSL) -> bool:
        """True when a new CA is to be made; refuses a CA that cannot be reused."""
        cert, key = self.resolve(ca_cert(cfg)), self.resolve(ca_key(cfg))
        has_cert, has_key = os.path.lexists(cert), os.path.lexists(key)
        if not has_cert and not has_key:
            return True
        keep = ("restore the CA's own files, or move ca.pem and private/ca.key away to "
                "create a new CA (every certificate it signed is then issued again); "
                "nothing was changed")
        if not has_cert or not has_key:
            have, lack = (ca_cert(cfg), ca_key(cfg)) if has_cert else (ca_key(cfg),
                                                                       ca_cert(cfg))
            raise RefusedError(f"the existing CA is incomplete: {have} exists, {lack} does "
                               "not", hint=keep)
        cert_pub = tool.cert_pubkey(cert) if cert.is_file() else None
        if cert_pub is None:
            raise RefusedError(f"the existing CA certificate {ca_cert(cfg)} is not a "
                               "readable certificate", hint=keep)
        key_pub = tool.key_pubkey(key) if key.is_file() else None
        if key_pub is None:
            raise RefusedError(f"the existing CA key {ca_key(cfg)} is not a readable private "
                               "key without a password", hint=keep)
        if cert_pub != key_pub:
            raise RefusedError(f"the existing CA key {ca_key(cfg)} does not match its "
                               f"certificate {ca_cert(cfg)} (their public keys differ)",
                               hint=keep)
        if tool.expires_within(cert, 0):
            raise RefusedError(f"the existing CA certificate {ca_cert(cfg)} has expired",
                               hint=keep)
        if tool.expires_within(cert, 30 * DAY):
            self.dialog.note(f"warning: the CA certificate {ca_cert(cfg)} expires within "
                             "30 days")
        return False

    def _survey(self, cfg: _config.SetupConfig) -> Work:
        tool = self._tool()
        section = cfg.section("pki")
        work = Work()
        base = pki_dir(cfg)
        for path, mode in ((base, 0o755), (f"{base}/certs", 0o755), (f"{base}/keys", 0o755),
                           (f"{base}/private", 0o700)):
            if not self.resolve(path).is_dir():
                work.dirs.append((path, mode))
        work.new_ca = self._check_ca(cfg, tool)
        if not work.new_ca:
            work.rewrite += self._meta(ca_cert(cfg), 0o644) + self._meta(ca_key(cfg), 0o600)
        fqdn = str(self.env["SETUP/fqdn"])
        threshold = min(30 * DAY, self.env[VALIDITY] * DAY // 2)
        password = str(self.env[PASSWORD])
        serials: List[int] = []
        ca_host = self.resolve(ca_cert(cfg))
        for name in section["certs"]:
            key = self.resolve(key_path(cfg, name))
            key_pub = tool.key_pubkey(key) if key.is_file() else None
            if key_pub is None:
                work.new_keys.append(name)
                work.issue[name] = "new key"
            elif work.new_ca:
                work.issue[name] = "new CA"
            else:
                why = self._cert_problem(cfg, name, tool, key_pub, fqdn, threshold, serials)
                if why:
                    work.issue[name] = why
                else:
                    work.rewrite += self._meta(cert_path(cfg, name), 0o644)
            if name not in work.new_keys:
                work.rewrite += self._meta(key_path(cfg, name), 0o600)
            why = work.issue.get(name) and "new certificate"
            why = why or self._keystore_problem(cfg, name, tool, password, ca_host, key)
            if why:
                work.export[name] = why
            else:
                work.rewrite += self._meta(keystore_path(cfg, name), 0o600)
        work.write_password = not unchanged(self, password_path(cfg),
                                            (password + "\n").encode("utf-8"), 0o600)
        stored = (_config.read_target(self, serial_path(cfg)) or b"").decode("ascii", "replace")
        try:
            work.next_serial = max(int(stored.strip(), 16), FIRST_SERIAL)
        except ValueError:
            work.next_serial = FIRST_SERIAL
        work.next_serial = max([work.next_serial] + [s + 1 for s in serials])
        if not work.issue:
            work.rewrite += self._meta(serial_path(cfg), 0o644)
        for entry in section.get("extract", []):
            data = _config.read_target(self, key_path(cfg, entry["cert"]))
            if entry["cert"] in work.new_keys or data is None or not unchanged(
                    self, entry["to"], data, _extract_mode(entry), entry.get("owner", "root"),
                    entry.get("group", "root")):
                work.extracts.append(dict(entry))
        wanted = {entry["to"] for entry in section.get("extract", [])}
        work.stale = [path for path, record in sorted(self.state.files("setup").items())
                      if record.get("written_by") == EXTRACTED and path not in wanted
                      and os.path.lexists(self.resolve(path, follow_last=False))]
        return work

    def _meta(self, path: str, mode: int) -> List[Tuple[str, int]]:
        """[(path, mode)] when a kept file lacks its mode or root ownership."""
        data = _config.read_target(self, path)
        if data is None or unchanged(self, path, data, mode):
            return []
        return [(path, mode)]

    def _cert_problem(self, cfg: _config.SetupConfig, name: str, tool: OpenSSL, key_pub: str,
                      fqdn: str, threshold: int, serials: List[int]) -> Optional[str]:
        """Why an existing service certificate cannot be kept (None: keep it)."""
        cert = self.resolve(cert_path(cfg, name))
        if not cert.is_file():
            return "absent"
        info = tool.cert_info(cert, threshold)
        if info is None:
            return "not a certificate"
        serials.append(info.serial)
        if info.common_name != fqdn:
            return f"its CN is {info.common_name}, not {fqdn}"
        if not tool.signed_by(cert, self.resolve(ca_cert(cfg))):
            return "not signed by this CA, or not valid now"
        if info.expiring:
            return f"expires within {threshold // DAY or 1} day(s)"
        if tool.cert_pubkey(cert) != key_pub:
            return "does not match its key"
        return None

    def _keystore_problem(self, cfg: _config.SetupConfig, name: str, tool: OpenSSL,
                          password: str, ca_host: Path, key: Path) -> Optional[str]:
        p12 = self.resolve(keystore_path(cfg, name))
        if not p12.is_file():
            return "absent"
        pem = tool.keystore(p12, password)
        if pem is None:
            return "does not open with the keystore password"
        cert = self.resolve(cert_path(cfg, name))
        want = set(pem_ders(_text(cert), "CERTIFICATE") + pem_ders(_text(ca_host), "CERTIFICATE"))
        if (set(pem_ders(pem, "CERTIFICATE")) != want
                or pem_ders(pem, "PRIVATE KEY") != pem_ders(_text(key), "PRIVATE KEY")):
            return "holds another certificate or key"
        return None

    def _plan(self, cfg: _config.SetupConfig, work: Work) -> None:
        if work.new_ca:
            self.plan(f"create a CA in {pki_dir(cfg)} (O={self.env[ORG]}, "
                      f"{self.env[KEY_SIZE]} bits, {self.env[VALIDITY]} days)")
        else:
            pem = (_config.read_target(self, ca_cert(cfg)) or b"").decode("ascii", "replace")
            self.log.info("existing CA %s kept (SHA-256 fingerprint %s)", ca_cert(cfg),
                          cert_fingerprint(pem))
        for name, why in work.issue.items():
            self.plan(f"issue {cert_path(cfg, name)} (CN={self.env['SETUP/fqdn']}; {why})")
        for name, why in work.export.items():
            self.plan(f"export the keystore {keystore_path(cfg, name)} ({why})")
        if work.write_password:
            self.plan(f"write the keystore password to {password_path(cfg)} (0600)")
        for entry in work.extracts:
            self.plan(f"write a password-less copy of the {entry['cert']} key to "
                      f"{entry['to']} ({entry.get('owner', 'root')}:"
                      f"{entry.get('group', 'root')}, {_extract_mode(entry):04o})")
        for path, mode in work.rewrite:
            self.plan(f"set {path} to root, {mode:04o}")
        for path in work.stale:
            self.plan(f"remove the password-less key copy {path} (no longer in the recipe)")

    # -- misc: make and write ----------------------------------------------------------------
    @engine.event(stage=Stages.MISC, name="setup.pki.create",
                  condition=lambda self: not self.dry_run and _config.configured(self, "pki"))
    def _create(self) -> None:
        work = self.work
        assert work is not None
        if work.empty():
            self.log.info("PKI: nothing to change")
            return
        cfg = self._cfg()
        for path, mode in work.dirs:
            self.transaction.append(engine.MakeDirs(path, mode=mode, owner="root",
                                                    group="root"))
        with tempfile.TemporaryDirectory(prefix="satchel-pki-") as tmp:
            writes = self._make(cfg, work, Path(tmp))
        for element in writes:
            self.transaction.append(element)
        for path in work.stale:
            self.transaction.append(engine.FileRemove(path))

    def _make(self, cfg: _config.SetupConfig, work: Work, tmp: Path) -> List[engine.FileWrite]:
        """Generate what `work` needs in `tmp`; the FileWrite elements that put it on
        the target."""
        tool, env = self._tool(), self.env
        fqdn, org = str(env["SETUP/fqdn"]), str(env[ORG])
        bits, days, password = env[KEY_SIZE], env[VALIDITY], str(env[PASSWORD])
        config = tmp / "openssl.cnf"
        config.write_text(CONFIG.format(fqdn=fqdn), encoding="utf-8")
        out: List[engine.FileWrite] = []

        def add(target: str, host: Path, mode: int, secret: bool = False,
                info: Optional[Dict[str, Any]] = None) -> None:
            out.append(RecordedFileWrite(target, host.read_bytes(), mode, secret, info))

        ca_c, ca_k = self.resolve(ca_cert(cfg)), self.resolve(ca_key(cfg))
        if work.new_ca:
            ca_c, ca_k = tmp / "ca.pem", tmp / "ca.key"
            tool.new_key(ca_k, bits)
            tool.new_ca(ca_k, ca_c, subject(org, f"{fqdn}.{secrets.randbelow(90000) + 10000}"),
                        days, secrets.randbits(63) | 1 << 62, config)
            add(ca_key(cfg), ca_k, 0o600)
            add(ca_cert(cfg), ca_c, 0o644,
                info={"fingerprint": cert_fingerprint(ca_c.read_text())})
        keys: Dict[str, Path] = {}
        certs: Dict[str, Path] = {}
        for name in cfg.section("pki")["certs"]:
            keys[name] = self.resolve(key_path(cfg, name))
            certs[name] = self.resolve(cert_path(cfg, name))
            if name in work.new_keys:
                keys[name] = tmp / f"{name}.key"
                tool.new_key(keys[name], bits)
                add(key_path(cfg, name), keys[name], 0o600)
        serial = work.next_serial
        for name in work.issue:
            certs[name] = tmp / f"{name}.cer"
            tool.issue(keys[name], certs[name], subject(org, fqdn), days, serial, ca_c, ca_k,
                       config)
            serial += 1
            add(cert_path(cfg, name), certs[name], 0o644)
        if work.issue:
            (tmp / "serial.txt").write_text(f"{serial:04X}\n", encoding="ascii")
            add(serial_path(cfg), tmp / "serial.txt", 0o644)
        for name in work.export:
            p12 = tmp / f"{name}.p12"
            tool.export(p12, certs[name], keys[name], ca_c, name, password)
            add(keystore_path(cfg, name), p12, 0o600)
        if work.write_password:
            out.append(RecordedFileWrite(password_path(cfg), (password + "\n").encode("utf-8"),
                                         0o600, secret=True))
        for path, mode in work.rewrite:
            add(path, self.resolve(path), mode)
        for entry in work.extracts:
            out.append(RecordedFileWrite(
                entry["to"], keys[entry["cert"]].read_bytes(), _extract_mode(entry),
                info={"written_by": EXTRACTED}, owner=entry.get("owner", "root"),
                group=entry.get("group", "root")))
        return out

    # -- closeup: the fingerprints -------------------------------------------------------------
    @engine.event(stage=Stages.CLOSEUP, name="setup.pki.fingerprints",
                  condition=lambda self: not self.dry_run and _config.configured(self, "pki"))
    def _fingerprints(self) -> None:
        cfg = self._cfg()
        pem = (_config.read_target(self, ca_cert(cfg)) or b"").decode("ascii", "replace")
        self._say(f"CA certificate {ca_cert(cfg)}: SHA-256 fingerprint "
                  f"{cert_fingerprint(pem) or '(unreadable)'}")
        host_key = cfg.section("pki").get("ssh_host_key")
        if host_key is None:
            return
        line = _config.read_target(self, host_key)
        if line is None:
            self._say(f"SSH host key {host_key}: absent (no fingerprint yet)")
            return
        found = ssh_fingerprint(line.decode("utf-8", "replace"))
        self._say(f"SSH host key {host_key}: fingerprint {found or '(not an OpenSSH key)'}")

    def _say(self, text: str) -> None:
        """Print `text` and keep it in the run's log (at debug: the console shows
        the note already)."""
        self.log.debug("%s", text)
        self.dialog.note(text)
