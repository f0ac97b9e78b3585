"""The CA's store layer: database rows in, frozen values out.

Only :mod:`ca` modules use the rows of :mod:`ca.models`; what leaves the
package is :class:`CAInfo` and :class:`CertificateInfo`.  The helpers here
find rows by name, id or serial number and turn certificates back into the
subject mappings and subjectAltNames the profiles check.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca.models import CA_ACTIVE, CA_PENDING, CertificateAuthorityRow, CertificateRow
from ca.profiles import SUBJECT_ATTRIBUTES, SubjectAltNames
from ca.service_errors import AmbiguousSerial, CAInactive, CertificateNotFound, UnknownCA

# A reference of at most this many decimal digits is an id; anything longer is a serial number.
_MAX_ID_DIGITS = 15
_HEX = re.compile(r"[0-9a-f]{1,40}")


def format_serial(serial: int) -> str:
    """A serial number as Hengxin shows and stores it: lower-case hex without separators."""
    return format(serial, "x")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


def subject_mapping(name: x509.Name) -> dict[str, str | list[str]]:
    """The subject attributes Hengxin knows, by name (``{"CN": "张伟", "OU": ["a", "b"]}``).

    Attributes of other types are left out; the profiles would refuse them anyway.
    """
    names = {attribute.oid: attribute.name for attribute in SUBJECT_ATTRIBUTES.values()}
    values: dict[str, list[str]] = {}
    for attribute in name:
        key = names.get(attribute.oid)
        if key is not None and isinstance(attribute.value, str):
            values.setdefault(key, []).append(attribute.value)
    return {key: value[0] if len(value) == 1 else value for key, value in values.items()}


def subject_alt_names(certificate: x509.Certificate | x509.CertificateSigningRequest) -> SubjectAltNames:
    """The DNS, IP, e-mail and URI subjectAltNames of a certificate or CSR."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return SubjectAltNames()
    return SubjectAltNames.from_general_names(extension.value)


@dataclasses.dataclass(frozen=True)
class CAInfo:
    """A certificate authority as the service and the API see it."""

    id: int
    name: str
    parent: str | None
    status: str
    key_id: str
    certificate_der: bytes = dataclasses.field(repr=False)
    certificate_id: int | None
    ocsp_key_id: str | None
    ocsp_certificate_der: bytes | None = dataclasses.field(repr=False)
    ocsp_certificate_id: int | None
    crl_number: int
    crl_dirty_since: dt.datetime | None
    created_at: dt.datetime

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    @cached_property
    def ocsp_certificate(self) -> x509.Certificate | None:
        if not self.ocsp_certificate_der:
            return None
        return x509.load_der_x509_certificate(self.ocsp_certificate_der)

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint(self.certificate_der)

    @property
    def path_length(self) -> int | None:
        return self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclasses.dataclass(frozen=True)
class CertificateInfo:
    """An issued (or reserved) certificate as the service and the API see it."""

    id: int
    ca: str
    ca_id: int
    serial: int
    status: str
    profile: str
    subject: str
    key_mode: str
    owner: str | None
    key_id: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes | None = dataclasses.field(repr=False)
    fingerprint_sha256: str | None
    requested_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    invalidity_date: dt.datetime | None
    renewal_of: int | None

    @property
    def serial_hex(self) -> str:
        return format_serial(self.serial)

    @cached_property
    def certificate(self) -> x509.Certificate | None:
        return None if self.der is None else x509.load_der_x509_certificate(self.der)

    @property
    def pem(self) -> bytes | None:
        certificate = self.certificate
        return None if certificate is None else certificate.public_bytes(serialization.Encoding.PEM)


def ca_info(row: CertificateAuthorityRow, names: Mapping[int, str]) -> CAInfo:
    return CAInfo(
        id=row.id,
        name=row.name,
        parent=names.get(row.parent_id) if row.parent_id is not None else None,
        status=row.status,
        key_id=row.key_id,
        certificate_der=row.certificate_der,
        certificate_id=row.certificate_id,
        ocsp_key_id=row.ocsp_key_id,
        ocsp_certificate_der=row.ocsp_certificate_der,
        ocsp_certificate_id=row.ocsp_certificate_id,
        crl_number=row.crl_number,
        crl_dirty_since=row.crl_dirty_since,
        created_at=row.created_at,
    )


def certificate_info(row: Any, ca_name: str) -> CertificateInfo:
    """A certificate row (ORM object or Core row) as a frozen value."""
    return CertificateInfo(
        id=row.id,
        ca=ca_name,
        ca_id=row.ca_id,
        serial=row.serial,
        status=row.status,
        profile=row.profile,
        subject=row.subject,
        key_mode=row.key_mode,
        owner=row.owner,
        key_id=row.key_id,
        not_before=row.not_before,
        not_after=row.not_after,
        der=row.der,
        fingerprint_sha256=row.fingerprint_sha256,
        requested_by=row.requested_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
        invalidity_date=row.invalidity_date,
        renewal_of=row.renewal_of,
    )


def ca_names(session: Session) -> dict[int, str]:
    rows = session.execute(select(CertificateAuthorityRow.id, CertificateAuthorityRow.name))
    return {row.id: row.name for row in rows}


def list_cas(session: Session, *, include_pending: bool = False) -> list[CAInfo]:
    """Every CA, oldest first (pending ones, whose creation did not finish, only on request)."""
    rows = session.scalars(select(CertificateAuthorityRow).order_by(CertificateAuthorityRow.id)).all()
    names = {row.id: row.name for row in rows}
    return [ca_info(row, names) for row in rows if include_pending or row.status != CA_PENDING]


def ca_row_by_name(session: Session, name: str, *, for_update: bool = False) -> CertificateAuthorityRow:
    """The CA called ``name``; raises UnknownCA (also for a pending one)."""
    query = select(CertificateAuthorityRow).where(CertificateAuthorityRow.name == name)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None or row.status == CA_PENDING:
        raise UnknownCA(f"no certificate authority is named {name!r}", detail_zh=f"证书认证机构 {name!r} 不存在",
                        ca=name)
    return row


def active_ca_row(session: Session, name: str) -> CertificateAuthorityRow:
    """The CA called ``name`` if it may issue; raises UnknownCA or CAInactive."""
    row = ca_row_by_name(session, name)
    if row.status != CA_ACTIVE:
        raise CAInactive(f"certificate authority {name!r} is {row.status}", detail_zh=f"证书认证机构 {name!r} 不可用",
                         ca=name)
    return row


def parse_reference(reference: str | int) -> tuple[str, int]:
    """("id", n) or ("serial", n) from ``42``, ``"42"``, ``"id:42"``, ``"serial:1f..."`` or a hex serial.

    Up to 15 decimal digits is an id; a longer or hexadecimal reference is a
    serial number (colons, spaces and a ``0x`` prefix are ignored).  Raises
    CertificateNotFound for anything else.
    """
    if isinstance(reference, int) and not isinstance(reference, bool):
        return "id", reference
    text = str(reference).strip().lower()
    kind = ""
    if text.startswith("id:"):
        kind, text = "id", text[3:]
    elif text.startswith("serial:"):
        kind, text = "serial", text[7:]
    if kind != "serial" and text.isdigit() and len(text) <= _MAX_ID_DIGITS:
        return "id", int(text)
    cleaned = text.replace(":", "").replace(" ", "").removeprefix("0x")
    if kind != "id" and _HEX.fullmatch(cleaned):
        return "serial", int(cleaned, 16)
    raise CertificateNotFound(f"{str(reference)[:80]!r} is neither a certificate id nor a serial number",
                              detail_zh="既不是证书编号也不是序列号")


def certificate_row(session: Session, reference: str | int) -> Any:
    """The certificate named by id or serial number, as a read-only row with the columns of ``ca_certificates``.

    A plain (Core) row rather than an ORM object: this is on the revocation path, which must stay cheap.

    Raises CertificateNotFound or AmbiguousSerial.
    """
    kind, value = parse_reference(reference)
    table = CertificateRow.__table__
    column = table.c.id if kind == "id" else table.c.serial
    rows = session.execute(select(table).where(column == value).limit(2)).all()
    if not rows:
        raise CertificateNotFound(f"no certificate {str(reference)[:80]!r}", detail_zh="证书不存在")
    if len(rows) > 1:
        raise AmbiguousSerial("this serial number was issued by more than one CA: use the certificate id",
                              detail_zh="该序列号被多个机构使用，请使用证书编号")
    return rows[0]
