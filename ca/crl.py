"""Building certificate revocation lists (RFC 5280 section 5).

:func:`build_crl` is a pure function of the issuer, the revoked entries, the
CRL number and the two update times.  It is written for large CRLs: entries
are built directly and handed to the CRL builder in one list (adding them one
at a time copies the list each time, which is quadratic).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from ca._common import key_identifier, require_utc, signature_hash
from ca.errors import CAError, IssuerInvalid

__all__ = ["RevokedEntry", "build_crl"]

_SERIAL_LIMIT = 1 << 159
# CRL numbers are at most 20 octets (RFC 5280 section 5.2.3).
_CRL_NUMBER_LIMIT = 1 << 159


class RevokedEntry(NamedTuple):
    """One revoked certificate.  A plain 4-tuple in this order works as well.

    ``reason`` ``None`` or ``unspecified`` puts no reasonCode in the entry
    (RFC 5280 section 5.3.1); ``invalidity_date`` is when the key is known or
    suspected to have been compromised.
    """

    serial: int
    revocation_time: datetime.datetime
    reason: x509.ReasonFlags | None = None
    invalidity_date: datetime.datetime | None = None


def _naive_utc(value: datetime.datetime, name: str) -> datetime.datetime:
    # The entries bypass RevokedCertificateBuilder's setters, which would make
    # this conversion; the encoder reads the naive fields as UTC.
    if type(value) is datetime.datetime and value.tzinfo is datetime.UTC:
        # What the database hands back: one replace instead of the general checks (a CRL has 100,000 of these).
        return value.replace(tzinfo=None, microsecond=0)
    return require_utc(value, name).replace(tzinfo=None)


def build_crl(
    issuer_cert: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    revoked: Iterable[RevokedEntry | tuple[int, datetime.datetime, x509.ReasonFlags | None, datetime.datetime | None]],
    crl_number: int,
    this_update: datetime.datetime,
    next_update: datetime.datetime,
) -> x509.CertificateRevocationList:
    """Build and sign a full CRL of ``issuer_cert``.

    The CRL carries the authorityKeyIdentifier (the issuer's SKI) and the CRL
    number; each entry carries a reasonCode unless the reason is absent or
    unspecified, and an invalidityDate when one is given.  Entries keep the
    order given.

    Raises:
        IssuerInvalid: the key does not belong to ``issuer_cert`` or the
            certificate may not sign CRLs.
        CAError: a caller bug: naive datetimes, ``next_update`` not after
            ``this_update``, a serial or CRL number out of range, or the reason
            ``removeFromCRL`` (which belongs to delta CRLs only).
    """
    this_update = require_utc(this_update, "this_update")
    next_update = require_utc(next_update, "next_update")
    if next_update <= this_update:
        raise CAError("next_update must be later than this_update")
    if isinstance(crl_number, bool) or not isinstance(crl_number, int) or not 0 <= crl_number < _CRL_NUMBER_LIMIT:
        raise CAError("crl_number must be a non-negative integer of at most 20 octets")
    _check_crl_issuer(issuer_cert, issuer_key)

    # One Extension object per reason, shared by every entry with that reason.
    reason_extensions: dict[x509.ReasonFlags, list[x509.Extension[x509.ExtensionType]]] = {
        reason: [x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(reason))]
        for reason in x509.ReasonFlags
        if reason not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)
    }
    no_extensions: list[x509.Extension[x509.ExtensionType]] = []
    entries = []
    for serial, revocation_time, reason, invalidity_date in revoked:
        if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < _SERIAL_LIMIT:
            raise CAError("revoked serial numbers must be positive integers below 2**159")
        if reason is None or reason is x509.ReasonFlags.unspecified:
            extensions = no_extensions
        elif reason is x509.ReasonFlags.remove_from_crl:
            raise CAError("removeFromCRL is only for delta CRLs")
        else:
            extensions = reason_extensions[x509.ReasonFlags(reason)]
        if invalidity_date is not None:
            invalidity = x509.InvalidityDate(_naive_utc(invalidity_date, "invalidity_date"))
            extensions = [*extensions, x509.Extension(x509.InvalidityDate.oid, False, invalidity)]
        entry = x509.RevokedCertificateBuilder(serial, _naive_utc(revocation_time, "revocation_time"), extensions)
        entries.append(entry.build())

    try:
        issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        issuer_ski = key_identifier(issuer_cert.public_key())
    crl_extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.AuthorityKeyIdentifier.oid, False, x509.AuthorityKeyIdentifier(issuer_ski, None, None)),
        x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(crl_number)),
    ]
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer_cert.subject,
        last_update=this_update.replace(tzinfo=None),
        next_update=next_update.replace(tzinfo=None),
        extensions=crl_extensions,
        revoked_certificates=entries,
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))  # type: ignore[arg-type]


def _check_crl_issuer(issuer_cert: x509.Certificate, issuer_key: CertificateIssuerPrivateKeyTypes) -> None:
    if issuer_cert.public_key() != issuer_key.public_key():
        raise IssuerInvalid("the issuer key does not belong to the issuer certificate",
                            detail_zh="签发密钥与签发机构证书不匹配")
    try:
        usage = issuer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise IssuerInvalid("the issuer certificate has no keyUsage extension",
                            detail_zh="签发机构证书缺少密钥用法扩展") from None
    if not usage.crl_sign:
        raise IssuerInvalid("the issuer certificate may not sign CRLs", detail_zh="签发机构证书不允许签发 CRL")
