"""The signed attributes of CAdES and PAdES signatures, with the signer's part encoded once per certificate.

pyHanko builds the signing-certificate-v2 attribute (RFC 5035: hash, issuer
and serial number of the signer certificate) anew for every signature, as an
asn1crypto structure that has never been encoded; asn1crypto then encodes it
again each time an enclosing structure is encoded (signed attributes,
``SignerInfo``, ``SignedData``, ``ContentInfo`` ...), some twenty times per
signature.  That was two thirds of the CPU time of a one-page PAdES
signature.  The attribute depends only on the certificate, so its DER is
made once and every signature loads it back: a value loaded from DER keeps
its encoding and is not encoded again.

The attributes themselves are exactly pyHanko's
(``CAdESSignedAttributeProviderSpec`` without CAdES extras): the
signing-certificate-v2 attribute, plus signing-time for CAdES but not PAdES,
which forbids it; pyHanko adds content-type, message-digest and
CMS-algorithm-protection itself.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Iterable

from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.attributes import CMSAttributeProvider, SignedAttributeProviderSpec, SigningTimeProvider
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.signers.pdf_cms import Signer

_ENCODED: dict[tuple[bytes, str], bytes] = {}
_ENCODED_LOCK = threading.Lock()
_ENCODED_MAX = 256  # certificates remembered; the platform signs with a handful of keys


def signing_certificate_v2(
    certificate: asn1_x509.Certificate, hash_algorithm: str = "sha256"
) -> tsp.SigningCertificateV2:
    """The ``SigningCertificateV2`` value naming ``certificate``, loaded from DER made once per certificate."""
    key = (certificate.sha256, hash_algorithm)
    der = _ENCODED.get(key)
    if der is None:
        der = as_signing_certificate_v2(certificate, hash_algorithm).dump()
        with _ENCODED_LOCK:
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.clear()
            _ENCODED[key] = der
    # A fresh object per signature: asn1crypto values parse lazily and are not shared between threads.
    return tsp.SigningCertificateV2.load(der)


class _SigningCertificateV2(CMSAttributeProvider):
    attribute_type = "signing_certificate_v2"

    def __init__(self, certificate: asn1_x509.Certificate) -> None:
        self.certificate = certificate

    async def build_attr_value(self, dry_run: bool = False) -> tsp.SigningCertificateV2:
        return signing_certificate_v2(self.certificate)


class _CAdESAttributes(SignedAttributeProviderSpec):
    """pyHanko's CAdES/PAdES signed attributes, the signing-certificate-v2 value prepared once."""

    def __init__(self, certificate: asn1_x509.Certificate, signing_time: dt.datetime | None) -> None:
        self.certificate = certificate
        self.signing_time = signing_time

    def signed_attr_providers(self, data_digest: bytes, digest_algorithm: str) -> Iterable[CMSAttributeProvider]:
        yield _SigningCertificateV2(self.certificate)
        if self.signing_time is not None:
            yield SigningTimeProvider(timestamp=self.signing_time)


def with_prepared_attributes(signer: Signer, *, signing_time: dt.datetime | None) -> Signer:
    """``signer`` for one CAdES (``signing_time`` given) or PAdES (``None``) signature with prepared attributes.

    Returns a shallow copy (same key, certificates and methods) whose
    signed-attribute specification is :class:`_CAdESAttributes`; the shared
    signer itself is not changed.  A signer that already names its own
    specification, or has no certificate, is returned as it is.
    """
    certificate = signer.signing_cert
    if signer.signed_attr_prov_spec is not None or certificate is None:
        return signer
    prepared = copy.copy(signer)
    prepared.signed_attr_prov_spec = _CAdESAttributes(certificate, signing_time)
    return prepared
