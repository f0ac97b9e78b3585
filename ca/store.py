"""The CA's store layer: database rows in, frozen values out.

Only :mod:`ca` modules use the rows of :mod:`ca.models`; what leaves the
package is :class:`CAInfo` and :class:`CertificateInfo`.  The helpers here
find rows by name, id or serial number and turn certificates back into the
subject mappings and subjectAltNames the profiles check.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
import hashlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar, cast

from cryptography import x509
from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from ca._common import certificate_pem
from ca.models import CA_ACTIVE, CA_PENDING, CertificateAuthorityRow, CertificateRow
from ca.profiles import SUBJECT_ATTRIBUTES, SubjectAltNames
from ca.service_errors import AmbiguousSerial, CAInactive, CertificateNotFound, UnknownCA

_CERTIFICATES = cast(Table, CertificateRow.__table__)
# Built once (see the statements in ca/service.py).
_ALL_AUTHORITIES = select(cast(Table, CertificateAuthorityRow.__table__))
_CERTIFICATE_BY_ID = select(_CERTIFICATES).where(_CERTIFICATES.c.id == bindparam("value")).limit(2)
_CERTIFICATE_BY_SERIAL = select(_CERTIFICATES).where(_CERTIFICATES.c.serial == bindparam("value")).limit(2)

# A reference of at most this many decimal digits is an id; anything longer is a serial number.
_MAX_ID_DIGITS = 15
_HEX = re.compile(r"[0-9a-f]{1,40}")


def format_serial(serial: int) -> str:
    """A serial number as Hengxin shows and stores it: lower-case hex without separators."""
    return format(serial, "x")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex."""
    return hashlib.sha256(der).hexdigest()


@functools.lru_cache(maxsize=256)
def _ca_certificate(der: bytes) -> x509.Certificate:
    # CA and responder certificates are read on every issuance and OCSP answer; their DER never changes,
    # so each is parsed once per process (certificates are immutable and safe to share between threads).
    return x509.load_der_x509_certificate(der)


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

    @property
    def certificate(self) -> x509.Certificate:
        return _ca_certificate(self.certificate_der)

    @property
    def ocsp_certificate(self) -> x509.Certificate | None:
        if not self.ocsp_certificate_der:
            return None
        return _ca_certificate(self.ocsp_certificate_der)

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
        return certificate_pem(self.certificate_der)


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
        return None if self.der is None else certificate_pem(self.der)


def ca_info(row: Any, names: Mapping[int, str]) -> CAInfo:
    """A CA row (ORM object or Core row) as a frozen value."""
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


def issuing_ca(connection: Connection, name: str) -> tuple[CAInfo, tuple[bytes, ...]]:
    """The CA that issues for ``name`` and the DER chain from it up to its root, read with one query.

    After a key rollover the CA called ``name`` is superseded and its newest successor issues.  The chain
    starts with the issuing CA's own certificate and ends with the root's.

    Raises UnknownCA (no such CA, or a pending one) or CAInactive (the issuing CA may not issue).
    """
    # Every CA row at once (there are a handful): one query instead of one per step of the walk.
    rows = connection.execute(_ALL_AUTHORITIES).all()
    by_id = {row.id: row for row in rows}
    names = {row.id: row.name for row in rows}
    row = next((r for r in rows if r.name == name), None)
    if row is None or row.status == CA_PENDING:
        raise UnknownCA(f"no certificate authority is named {name!r}", detail_zh=f"证书认证机构 {name!r} 不存在",
                        ca=name)
    for _ in range(100):
        if row.superseded_by is None or row.superseded_by not in by_id:
            break
        row = by_id[row.superseded_by]
    if row.status == CA_PENDING:
        raise UnknownCA(f"no certificate authority is named {row.name!r}",
                        detail_zh=f"证书认证机构 {row.name!r} 不存在", ca=row.name)
    if row.status != CA_ACTIVE:
        raise CAInactive(f"certificate authority {row.name!r} is {row.status}",
                         detail_zh=f"证书认证机构 {row.name!r} 不可用", ca=row.name)
    chain = [row.certificate_der]
    parent = row
    for _ in range(100):
        if parent.parent_id is None:
            break
        parent = by_id[parent.parent_id]
        chain.append(parent.certificate_der)
    return ca_info(row, names), tuple(chain)


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
    rows = session.connection().execute(_CERTIFICATE_BY_ID if kind == "id" else _CERTIFICATE_BY_SERIAL,
                                        {"value": value}).all()
    if not rows:
        raise CertificateNotFound(f"no certificate {str(reference)[:80]!r}", detail_zh="证书不存在")
    if len(rows) > 1:
        raise AmbiguousSerial("this serial number was issued by more than one CA: use the certificate id",
                              detail_zh="该序列号被多个机构使用，请使用证书编号")
    return rows[0]


T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[T, R]):
    __slots__ = ("item", "result", "error", "lead", "done", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.done = False
        # Held from the start; released exactly once to wake the caller, either to write the next group
        # ("lead") or because its group was written ("done").  A bare lock is the cheapest wake-up there is.
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit(Generic[T, R]):
    """Writes the items of concurrent callers in groups: one transaction, hence one commit (one fsync), for
    everything that queued up while the previous group was being written.

    ``write`` gets a list of items, writes them all in one transaction and returns one result per item; an
    exception in place of a result is raised to that item's caller alone.
    :meth:`submit` returns only after the transaction holding its item has committed.  A caller that finds
    nothing being written writes its own item at once, so a lone caller waits for nothing but its own
    commit; callers arriving meanwhile queue, and when a group is done the oldest of them writes the next
    group (up to ``max_batch`` items).  When a group fails, every caller in it gets the error (a copy of it,
    for all but the one that wrote the group): nothing is reported written that was not committed.
    """

    def __init__(self, write: Callable[[list[T]], Sequence[R | BaseException]], *, max_batch: int = 64) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T, R]] = []
        self._busy = False
        self.groups = 0
        self.items = 0

    def submit(self, item: T) -> R:
        """Write ``item`` (in a group); returns its result once committed, or raises what the write raised."""
        waiter: _Waiter[T, R] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            if not self._busy:
                self._busy = True
                waiter.lead = True
        if not waiter.lead:
            waiter.wake.acquire()
        if waiter.lead:
            # This caller is first in the queue: it writes the next group, which holds its own item.
            self._write_group()
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    def _write_group(self) -> None:
        with self._lock:
            group = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        error: BaseException | None = None
        results: Sequence[R | BaseException] = []
        try:
            results = self._write([w.item for w in group])
            if len(results) != len(group):
                raise RuntimeError(f"a group write returned {len(results)} results for {len(group)} items")
        except BaseException as e:  # noqa: BLE001 - handed to every caller of the group, who raise it
            error = e
        for index, waiter in enumerate(group):
            if error is None:
                result = results[index]
                if isinstance(result, BaseException):
                    waiter.error = result
                else:
                    waiter.result = result
            else:
                # The writer (first of the group) raises the error itself; the others a copy each, so
                # that threads do not raise (and extend the traceback of) one exception object together.
                waiter.error = error if index == 0 else _copy_error(error)
        with self._lock:
            self.groups += 1
            self.items += len(group)
            for waiter in group:
                waiter.done = True
            following = self._queue[0] if self._queue else None
            if following is not None:
                following.lead = True
            else:
                self._busy = False
        # The writer (group[0]) is not waiting; everyone else in the group is, and so is the next writer.
        for waiter in group[1:]:
            waiter.wake.release()
        if following is not None:
            following.wake.release()


def _copy_error(error: BaseException) -> BaseException:
    try:
        clone = copy.copy(error)
    except Exception:  # noqa: BLE001 - an exception that cannot be copied is shared instead
        return error
    clone.__cause__ = error
    return clone
