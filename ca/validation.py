"""Certificate path validation (RFC 5280 section 6) with pyhanko-certvalidator.

:func:`validate_path` is the generic entry point: any trust roots, any
intermediate certificates, any CRLs and OCSP responses, a fixed validation
time, and nothing fetched from the network.  The NIST PKITS suite runs
against it (``tests/interop/ca/test_pkits.py``); the CA service builds on it
with its own roots and CRLs (:meth:`ca.service.CAService.validate`).

:func:`check_purpose` checks keyUsage and extendedKeyUsage of the end-entity
certificate for a named purpose.

pyhanko-certvalidator is used only here, and its exceptions do not leave
this module: a failed validation is a :class:`PathOutcome` with a stable
``code`` and a readable ``reason``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as pv_errors

from ca.service_errors import CertificateInvalid

log = logging.getLogger("hengxin.ca.validation")

T = TypeVar("T")

# Purposes the validation service knows: (keyUsage bits, any one of which suffices;
# extendedKeyUsage that must be present unless the certificate has no EKU extension).
PURPOSES: Mapping[str, tuple[frozenset[str], ObjectIdentifier | None]] = {
    "any": (frozenset(), None),
    "server-auth": (frozenset({"digital_signature", "key_encipherment", "key_agreement"}),
                    ExtendedKeyUsageOID.SERVER_AUTH),
    "client-auth": (frozenset({"digital_signature", "key_agreement"}), ExtendedKeyUsageOID.CLIENT_AUTH),
    "document-signing": (frozenset({"digital_signature", "content_commitment"}), None),
    "non-repudiation": (frozenset({"content_commitment"}), None),
    "email-protection": (frozenset({"digital_signature", "content_commitment", "key_encipherment"}),
                         ExtendedKeyUsageOID.EMAIL_PROTECTION),
    "timestamping": (frozenset({"digital_signature", "content_commitment"}), ExtendedKeyUsageOID.TIME_STAMPING),
    "ocsp-signing": (frozenset({"digital_signature", "content_commitment"}), ExtendedKeyUsageOID.OCSP_SIGNING),
    "certificate-signing": (frozenset({"key_cert_sign"}), None),
}

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}

# The keyUsage names of cryptography's KeyUsage, as shown to clients (RFC 5280 spelling).
_KEY_USAGE_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


def load_certificate(data: bytes | str | x509.Certificate) -> x509.Certificate:
    """A certificate from PEM or DER; raises CertificateInvalid."""
    if isinstance(data, x509.Certificate):
        return data
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except (ValueError, TypeError) as e:
        raise CertificateInvalid("not an X.509 certificate in PEM or DER",
                                 detail_zh="不是 PEM 或 DER 格式的 X.509 证书") from e


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one certificate of a DER blob; raises CertificateInvalid."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    if raw.lstrip().startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_certificates(raw)
        except ValueError as e:
            raise CertificateInvalid("the chain is not a bundle of PEM certificates",
                                     detail_zh="证书链不是有效的 PEM 证书集合") from e
    return [load_certificate(raw)]


@dataclasses.dataclass(frozen=True)
class PathOutcome:
    """The result of one path validation.

    ``path`` runs from the end-entity certificate to the trust root when a
    path was found (valid or not); it is empty when none was.  ``code`` is
    ``valid`` or one of ``no_path``, ``expired``, ``not_yet_valid``,
    ``revoked``, ``revocation_unknown``, ``weak_algorithm``, ``invalid_path``.
    """

    valid: bool
    code: str
    reason: str | None
    path: tuple[x509.Certificate, ...] = ()
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None

    @property
    def trust_root(self) -> x509.Certificate | None:
        return self.path[-1] if self.path else None


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _crl(value: bytes | x509.CertificateRevocationList) -> asn1_crl.CertificateList:
    der = value.public_bytes(serialization.Encoding.DER) if isinstance(value, x509.CertificateRevocationList) else value
    return asn1_crl.CertificateList.load(der)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even when this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


def _path_certificates(path: Any) -> tuple[x509.Certificate, ...]:
    """A pyhanko ValidationPath as cryptography certificates, leaf first, root last."""
    from_root = [x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=True)]
    return tuple(reversed(from_root))


def validate_path(
    certificate: bytes | x509.Certificate,
    *,
    trust_roots: Iterable[bytes | x509.Certificate],
    intermediates: Iterable[bytes | x509.Certificate] = (),
    crls: Iterable[bytes | x509.CertificateRevocationList] = (),
    ocsp_responses: Iterable[bytes] = (),
    moment: dt.datetime,
    revocation_mode: str = "require",
    weak_hash_algorithms: Iterable[str] | None = None,
    retroactive_revocation_info: bool = False,
) -> PathOutcome:
    """Find and validate a path from ``certificate`` to one of ``trust_roots`` at ``moment``.

    Nothing is fetched: revocation information comes only from ``crls`` and
    ``ocsp_responses``.  ``revocation_mode`` is pyhanko-certvalidator's:
    ``require`` (every certificate below the root needs revocation
    information), ``hard-fail`` or ``soft-fail``.  ``weak_hash_algorithms``
    replaces the default set of refused hashes (MD5, SHA-1).

    Raises:
        CertificateInvalid: an input is not a certificate.
    """
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    leaf = load_certificate(certificate)
    roots = [_asn1(load_certificate(c)) for c in trust_roots]
    others = [_asn1(load_certificate(c)) for c in intermediates]
    context = ValidationContext(
        trust_roots=roots,
        other_certs=others,
        crls=[_crl(c) for c in crls],
        ocsps=[asn1_ocsp.OCSPResponse.load(bytes(o)) for o in ocsp_responses],
        moment=moment,
        allow_fetching=False,
        revocation_mode=revocation_mode,
        weak_hash_algos=set(weak_hash_algorithms) if weak_hash_algorithms is not None else None,
        retroactive_revinfo=retroactive_revocation_info,
    )
    validator = CertificateValidator(_asn1(leaf), validation_context=context)
    try:
        path = _run(validator.async_validate_path())
    except pv_errors.PathBuildingError as e:
        return PathOutcome(False, "no_path", str(e))
    except pv_errors.RevokedError as e:
        return PathOutcome(False, "revoked", str(e), _path_certificates(e.original_path),
                           e.revocation_dt, _reason_name(e.reason))
    except pv_errors.ExpiredError as e:
        return PathOutcome(False, "expired", str(e), _path_certificates(e.original_path))
    except pv_errors.NotYetValidError as e:
        return PathOutcome(False, "not_yet_valid", str(e), _path_certificates(e.original_path))
    except pv_errors.InsufficientRevinfoError as e:
        return PathOutcome(False, "revocation_unknown", str(e), _path_certificates(e.original_path))
    except pv_errors.DisallowedAlgorithmError as e:
        return PathOutcome(False, "weak_algorithm", str(e), _path_certificates(e.original_path))
    except pv_errors.PathValidationError as e:
        return PathOutcome(False, "invalid_path", str(e), _path_certificates(e.original_path))
    except (pv_errors.ValidationError, ValueError) as e:
        # Raised before any path exists, e.g. for an untrusted self-signed certificate.
        return PathOutcome(False, "no_path", str(e))
    return PathOutcome(True, "valid", None, _path_certificates(path))


def _reason_name(reason: Any) -> str | None:
    try:
        return str(reason.native) if reason is not None else None
    except (AttributeError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class PurposeCheck:
    """Whether the end-entity certificate may be used for ``purpose``."""

    purpose: str
    satisfied: bool
    key_usage_any_of: tuple[str, ...]
    extended_key_usage: str | None
    reason: str | None = None


def check_purpose(certificate: x509.Certificate, purpose: str) -> PurposeCheck:
    """Check keyUsage and extendedKeyUsage of ``certificate`` for ``purpose`` (a key of :data:`PURPOSES`).

    An absent keyUsage or extendedKeyUsage extension does not restrict the
    key (RFC 5280 sections 4.2.1.3 and 4.2.1.12); anyExtendedKeyUsage
    satisfies every extended purpose.

    Raises:
        KeyError: unknown purpose (the caller validates the name).
    """
    bits, eku = PURPOSES[purpose]
    shown_bits = tuple(sorted(_KEY_USAGE_NAMES[b] for b in bits))
    shown_eku = _EKU_NAMES.get(eku, eku.dotted_string) if eku is not None else None
    if bits:
        try:
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not any(getattr(usage, bit) for bit in bits):
            return PurposeCheck(purpose, False, shown_bits, shown_eku,
                                f"keyUsage has none of {', '.join(shown_bits)}")
    if eku is not None:
        try:
            extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            extended = None
        if extended is not None and eku not in extended and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in extended:
            return PurposeCheck(purpose, False, shown_bits, shown_eku, f"extendedKeyUsage lacks {shown_eku}")
    return PurposeCheck(purpose, True, shown_bits, shown_eku)
