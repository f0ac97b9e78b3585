"""Helpers for the directory integration tests: the real ldap-utils binaries and a tiny PKI."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import subprocess
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LDIFRecord = dict[str, list[bytes]]


def parse_ldif(text: str) -> list[tuple[str, LDIFRecord]]:
    """Parse unwrapped LDIF (``-o ldif-wrap=no``) into (dn, {lowercased attribute: [values]}).

    ``name:: value`` lines are base64 and decoded; comments are skipped.
    """
    records: list[tuple[str, LDIFRecord]] = []
    for block in text.strip().split("\n\n"):
        dn = None
        attributes: LDIFRecord = {}
        for line in block.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip())
            else:
                value = rest[1:].encode() if rest.startswith(" ") else rest.encode()
            if name.lower() == "dn":
                dn = value.decode()
            else:
                attributes.setdefault(name.lower(), []).append(value)
        if dn is not None:
            records.append((dn, attributes))
    return records


def ldapsearch(
    uri: str,
    base: str,
    *attributes: str,
    bind: tuple[str, str] | None = None,
    search_filter: str = "(objectClass=*)",
    scope: str = "sub",
) -> list[tuple[str, LDIFRecord]]:
    """Run the real ``ldapsearch`` (simple bind or anonymous) and parse its output."""
    command = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", uri, "-b", base, "-s", scope]
    if bind is not None:
        command += ["-D", bind[0], "-w", bind[1]]
    completed = subprocess.run([*command, search_filter, *attributes], capture_output=True, text=True, timeout=30)
    if completed.returncode not in (0, 32):  # 32: no such object
        raise AssertionError(f"ldapsearch failed ({completed.returncode}): {completed.stderr}")
    return parse_ldif(completed.stdout)


def ldapwhoami(uri: str, dn: str, password: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``ldapwhoami`` with a simple bind."""
    return subprocess.run(
        ["ldapwhoami", "-x", "-H", uri, "-D", dn, "-w", password], capture_output=True, text=True, timeout=30
    )


@dataclass
class MiniPKI:
    """A root CA, a CRL and helpers to issue certificates, made with cryptography."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, name: str = "Hengxin Test Root") -> MiniPKI:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def issue(
        self, common_name: str, *, server_ip: str | None = None
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=10))
        )
        if server_ip is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(server_ip)), x509.DNSName("localhost")]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def crl(self, revoked_serials: tuple[int, ...] = ()) -> x509.CertificateRevocationList:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + datetime.timedelta(days=1))
        )
        for serial in revoked_serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return builder.sign(self.key, hashes.SHA256())


def der(value: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return value.public_bytes(serialization.Encoding.DER)


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
