"""PAdES and CMS signing and verification (issue 8), as a pure domain core.

Public API::

    sign_pdf(pdf, signer, *, level, limits, timestamper, revocation, trust_roots, visible,
             reason, location, contact, field_name) -> bytes
    add_document_timestamp(pdf, timestamper, *, limits, revocation, trust_roots, field_name) -> bytes
    sign_cms_detached(data, signer, *, level, timestamper, max_bytes) -> bytes   # DER .p7s
    verify_pdf(pdf, *, trust_roots, revocation, validation_time, limits, etsi_report) -> VerificationReport
    verify_cms(signature, content, *, trust_roots, revocation, validation_time) -> VerificationReport
    verify(pdf | (signature, content), *, trust_roots, ...) -> VerificationReport

Each has an ``async_`` twin for use inside an event loop.  What the package
needs from the platform (a signer, a timestamp provider, a revocation
provider) is declared in :mod:`signing.interfaces`; see docs/signing.md.
"""

from signing.appearance import VisibleSignature
from signing.cms import async_sign_cms_detached, sign_cms_detached
from signing.interfaces import ProviderTimeStamper, RevocationInfo, RevocationProvider, TimestampProvider
from signing.pdf import (
    PAdESLevel,
    PdfLimits,
    add_document_timestamp,
    async_add_document_timestamp,
    async_sign_pdf,
    sign_pdf,
)
from signing.verify import (
    CertificateSummary,
    Revocation,
    SignatureReport,
    VerificationReport,
    async_verify_cms,
    async_verify_pdf,
    verify,
    verify_cms,
    verify_pdf,
)

__all__ = [
    "CertificateSummary",
    "PAdESLevel",
    "PdfLimits",
    "ProviderTimeStamper",
    "Revocation",
    "RevocationInfo",
    "RevocationProvider",
    "SignatureReport",
    "TimestampProvider",
    "VerificationReport",
    "VisibleSignature",
    "add_document_timestamp",
    "async_add_document_timestamp",
    "async_sign_cms_detached",
    "async_sign_pdf",
    "async_verify_cms",
    "async_verify_pdf",
    "sign_cms_detached",
    "sign_pdf",
    "verify",
    "verify_cms",
    "verify_pdf",
]
