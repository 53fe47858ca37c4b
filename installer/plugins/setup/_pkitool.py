"""openssl as the PKI plugin uses it (pki.py), and the fingerprints it prints.

Every command goes through the plugin's run() (logged, never a secret in argv:
the keystore password goes to openssl on stdin). Paths are host paths: files in
the plugin's private temporary directory, or files already on the target.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import pathlib
import re
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

Run = Callable[..., Any]

# Our own openssl configuration (the host's openssl.cnf plays no part).
CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[service_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = DNS:{fqdn}
"""

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


def pem_ders(text: str, label: str) -> List[bytes]:
    """The DER bytes of each PEM block of `label` ("CERTIFICATE", "PRIVATE KEY")."""
    out = []
    for kind, body in _BLOCK.findall(text):
        if kind == label:
            try:
                out.append(base64.b64decode("".join(body.split()), validate=True))
            except binascii.Error:
                continue
    return out


def cert_fingerprint(pem: str) -> Optional[str]:
    """SHA-256 of the certificate's DER in colon hex, as `openssl x509 -fingerprint
    -sha256` prints it; None when `pem` holds no certificate."""
    ders = pem_ders(pem, "CERTIFICATE")
    if not ders:
        return None
    digest = hashlib.sha256(ders[0]).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(line: str) -> Optional[str]:
    """`SHA256:<base64 without padding>` of an OpenSSH public key line's key blob,
    as `ssh-keygen -l` prints it; None when the line is not such a key. Like
    ssh-keygen, the digest is of the key as OpenSSH encodes it: the integers of an
    RSA or DSA key in their shortest form."""
    fields = line.split()
    for i, field in enumerate(fields[:-1]):
        if not re.match(r"^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+$", field):
            continue
        try:
            parts = _ssh_strings(base64.b64decode(fields[i + 1], validate=True))
        except (binascii.Error, ValueError):
            return None
        if not parts or parts[0] != field.encode("ascii"):
            return None
        if field in ("ssh-rsa", "ssh-dss"):  # mpints
            parts = parts[:1] + [_mpint(p) for p in parts[1:]]
        blob = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return None


def _ssh_strings(blob: bytes) -> List[bytes]:
    out, at = [], 0
    while at < len(blob):
        if at + 4 > len(blob):
            raise ValueError("truncated key blob")
        size = int.from_bytes(blob[at:at + 4], "big")
        if at + 4 + size > len(blob):
            raise ValueError("truncated key blob")
        out.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    return out


def _mpint(raw: bytes) -> bytes:
    """A non-negative SSH mpint in its canonical form (no redundant leading zero)."""
    value = int.from_bytes(raw, "big")
    if not value:
        return b""
    data = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return b"\0" + data if data[0] & 0x80 else data


def subject(organization: str, common_name: str) -> str:
    """An openssl -subj value; '+' and '=' escaped ('/' and '\\' are refused earlier)."""
    def esc(value: str) -> str:
        return re.sub(r"([+=])", r"\\\1", value)
    return f"/O={esc(organization)}/CN={esc(common_name)}"


@dataclass(frozen=True)
class CertInfo:
    serial: int
    common_name: Optional[str]
    expiring: bool  # expires within the threshold given to cert_info


class OpenSSL:
    def __init__(self, run: Run) -> None:
        self.run = run

    def _out(self, argv: List[str], input: Optional[str] = None) -> Optional[str]:
        proc = self.run(["openssl", *argv], check=False, input=input)
        return proc.stdout if proc.returncode == 0 else None

    # -- making -----------------------------------------------------------------------
    def new_key(self, out: pathlib.Path, bits: int) -> None:
        self.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                  f"rsa_keygen_bits:{bits}", "-out", str(out)])

    def new_ca(self, key: pathlib.Path, out: pathlib.Path, subj: str, days: int,
               serial: int, config: pathlib.Path) -> None:
        self.run(["openssl", "req", "-new", "-x509", "-config", str(config), "-extensions",
                  "ca_ext", "-key", str(key), "-out", str(out), "-days", str(days),
                  "-sha256", "-utf8", "-subj", subj, "-set_serial", hex(serial)])

    def issue(self, key: pathlib.Path, out: pathlib.Path, subj: str, days: int, serial: int,
              ca: pathlib.Path, ca_key: pathlib.Path, config: pathlib.Path) -> None:
        csr = out.with_suffix(".csr")
        self.run(["openssl", "req", "-new", "-config", str(config), "-key", str(key),
                  "-out", str(csr), "-utf8", "-subj", subj])
        self.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                  str(ca_key), "-set_serial", hex(serial), "-days", str(days), "-sha256",
                  "-extfile", str(config), "-extensions", "service_ext", "-out", str(out)])

    def export(self, out: pathlib.Path, cert: pathlib.Path, key: pathlib.Path,
               ca: pathlib.Path, name: str, password: str) -> None:
        """A PKCS#12 keystore of cert, key and the CA, protected by `password`
        (given on stdin, never in argv)."""
        self.run(["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
                  "-certfile", str(ca), "-name", name, "-passout", "stdin",
                  "-out", str(out)], input=password + "\n")

    # -- reading ----------------------------------------------------------------------
    def keystore(self, path: pathlib.Path, password: str) -> Optional[str]:
        """The PEM content of a PKCS#12 file (certificates and the key), None when it
        does not open with `password`."""
        return self._out(["pkcs12", "-in", str(path), "-nodes", "-passin", "stdin"],
                         input=password + "\n")

    def cert_pubkey(self, path: pathlib.Path) -> Optional[str]:
        return self._out(["x509", "-in", str(path), "-noout", "-pubkey"])

    def key_pubkey(self, path: pathlib.Path) -> Optional[str]:
        return self._out(["pkey", "-in", str(path), "-pubout"])

    def expires_within(self, path: pathlib.Path, seconds: int) -> bool:
        proc = self.run(["openssl", "x509", "-in", str(path), "-noout", "-checkend",
                         str(seconds)], check=False)
        return proc.returncode != 0

    def cert_info(self, path: pathlib.Path, threshold: int) -> Optional[CertInfo]:
        """Serial, CN and whether it expires within `threshold` seconds; None when
        the file is not a certificate."""
        proc = self.run(["openssl", "x509", "-in", str(path), "-noout", "-serial",
                         "-subject", "-nameopt", "multiline,utf8,-esc_msb",
                         "-checkend", str(threshold)], check=False)
        serial = re.search(r"^serial=([0-9A-Fa-f]+)$", proc.stdout or "", re.M)
        if serial is None:
            return None
        cn = re.search(r"^\s+commonName\s+= (.*)$", proc.stdout, re.M)
        return CertInfo(int(serial.group(1), 16), cn.group(1) if cn else None,
                        proc.returncode != 0)

    def signed_by(self, cert: pathlib.Path, ca: pathlib.Path) -> bool:
        """The CA's signature verifies and the certificate is valid now."""
        proc = self.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], check=False)
        return proc.returncode == 0
