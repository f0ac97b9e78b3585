"""Certificates, revocation data and pyHanko validation contexts, built offline.

Every ``ValidationContext`` made here has ``allow_fetching=False``: the only
revocation data it sees is what the :class:`~signing.interfaces.RevocationProvider`
supplied and what the document itself embeds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import ValidationContext

from signing.errors import SigningRequestInvalid
from signing.interfaces import RevocationInfo, RevocationProvider

# What a caller may pass as a certificate: DER or PEM bytes, an asn1crypto
# certificate, or anything with cryptography's ``public_bytes(Encoding.DER)``.
CertificateLike = Any


def as_certificate(value: CertificateLike) -> asn1_x509.Certificate:
    """Return ``value`` as an asn1crypto certificate.

    Raises :class:`SigningRequestInvalid` when it is not a certificate.
    """
    if isinstance(value, asn1_x509.Certificate):
        return value
    if hasattr(value, "public_bytes"):
        from cryptography.hazmat.primitives.serialization import Encoding

        value = value.public_bytes(Encoding.DER)
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
        try:
            if pem.detect(data):
                _, _, data = pem.unarmor(data)
            certificate = asn1_x509.Certificate.load(data, strict=True)
            certificate.subject.native  # noqa: B018 - parse the parts we use now
            certificate.public_key.native  # noqa: B018
            return certificate
        except Exception as e:
            raise SigningRequestInvalid("a certificate could not be parsed", detail_zh="证书无法解析") from e
    raise SigningRequestInvalid("expected a certificate", detail_zh="需要证书")


def as_certificates(values: Iterable[CertificateLike] | None) -> list[asn1_x509.Certificate]:
    """Every value as an asn1crypto certificate, duplicates removed."""
    seen: dict[bytes, asn1_x509.Certificate] = {}
    for value in values or ():
        certificate = as_certificate(value)
        seen.setdefault(certificate.sha256, certificate)
    return list(seen.values())


def is_self_signed(certificate: asn1_x509.Certificate) -> bool:
    """Whether subject and issuer agree (a root); the signature itself is not checked."""
    return certificate.self_signed in ("maybe", "yes")


def ask_revocation(
    provider: RevocationProvider, certificates: Sequence[asn1_x509.Certificate]
) -> RevocationInfo:
    """Ask ``provider`` about every certificate that is not self-signed (roots need no revocation data)."""
    wanted = [c.dump() for c in certificates if not is_self_signed(c)]
    if not wanted:
        return RevocationInfo()
    info = provider.revocation_info(wanted)
    if not isinstance(info, RevocationInfo):
        raise TypeError("a RevocationProvider must return RevocationInfo")
    return info


def _load_crls(crls: Iterable[bytes]) -> list[asn1_crl.CertificateList]:
    loaded = []
    for der in crls:
        item = asn1_crl.CertificateList.load(der)
        loaded.append(item)
    return loaded


def _load_ocsps(responses: Iterable[bytes]) -> list[asn1_ocsp.OCSPResponse]:
    return [asn1_ocsp.OCSPResponse.load(der) for der in responses]


def validation_context(
    trust_roots: Sequence[asn1_x509.Certificate],
    *,
    revocation: RevocationInfo = RevocationInfo(),  # noqa: B008 - immutable
    other_certificates: Iterable[asn1_x509.Certificate] = (),
    moment: dt.datetime | None = None,
    revocation_mode: str = "soft-fail",
    retroactive_revinfo: bool = False,
) -> ValidationContext:
    """A pyHanko ``ValidationContext`` that never goes online.

    ``revocation_mode`` is certvalidator's: ``soft-fail`` (check what is
    there), ``hard-fail`` or ``require`` (every certificate below the root
    needs a CRL or an OCSP response).
    """
    others = list(other_certificates) + [asn1_x509.Certificate.load(der) for der in revocation.certificates]
    return ValidationContext(
        trust_roots=list(trust_roots),
        other_certs=others,
        crls=_load_crls(revocation.crls),
        ocsps=_load_ocsps(revocation.ocsp_responses),
        allow_fetching=False,
        revocation_mode=revocation_mode,
        moment=moment,
        retroactive_revinfo=retroactive_revinfo,
    )
