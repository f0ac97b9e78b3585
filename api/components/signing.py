"""Composition of document signing: migrations, signers, the in-process TSA and revocation data, seals, routes, CLI.

``open_hook`` builds a :class:`SigningPlatform` into ``platform.services["signing"]``.
It holds, for the life of the process:

- one :class:`core.keys.pyhanko_signer.KeyStoreSigner` per key (built on first
  use, never per request);
- one :class:`signing.ProviderTimeStamper` that asks the in-process TSA
  (``platform.services["tsa"].stamp``, so every token is recorded and
  audited, with the signing request's actor as requester);
- a :class:`CARevocation` provider answering from the CA service: the current
  CRL of each CA that issued a certificate asked about, and a fresh OCSP
  response for each such certificate;
- the record service (:class:`signing.service.SignatureService`).

Who may sign with what is decided here, not in ``signing``: a personal
signature uses the caller's newest valid custodial ``person-sign``
certificate (the route demands a recent strong authentication first); an
organisation seal is named in ``[[signing.seals]]`` with its rule.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import signing

if TYPE_CHECKING:
    from asn1crypto import x509 as asn1_x509
    from fastapi import APIRouter

    from api.platform import Platform
    from ca.service import CAService
    from ca.store import CAInfo, CertificateInfo
    from core.config import SigningSealSettings
    from core.keys.pyhanko_signer import KeyStoreSigner
    from signing import RevocationInfo, VerificationReport, VisibleSignature
    from signing.service import SignatureRecord, SignatureService

MIGRATIONS = Path(signing.__file__).parent / "migrations"

PERSON_PROFILE = "person-sign"
SEAL_PROFILE = "organisation-seal"
TRUST_CACHE_SECONDS = 60.0
DEFAULT_TSA_ACTOR = "service:signing"

log = logging.getLogger("hengxin.signing")

# The principal on whose behalf the in-process TSA is asked, so its token records name the requester.
_TSA_ACTOR: contextvars.ContextVar[str] = contextvars.ContextVar("signing_tsa_actor", default=DEFAULT_TSA_ACTOR)


def _asn1(der: bytes) -> asn1_x509.Certificate:
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(der)


def _ca_of(platform: Platform) -> CAService:
    from ca.service import CAService
    from core.errors import ConfigurationError

    service = platform.services.get("ca")
    if not isinstance(service, CAService):
        raise ConfigurationError("signing needs the certificate authority: run `hengxin init`")
    return service


# -- revocation data from the CA -----------------------------------------------------------------------


class CARevocation:
    """A :class:`signing.RevocationProvider` answered in-process by the CA service.

    For every certificate asked about that one of our CAs issued: that CA's
    current CRL (published anew when the stored one is past its nextUpdate)
    and an OCSP response from the CA's responder.  Self-signed roots and
    foreign certificates are left out.
    """

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    def _issuer_of(self, certificate: Any, cas: Sequence[CAInfo]) -> CAInfo | None:
        from cryptography.exceptions import InvalidSignature

        for ca in cas:
            issuer = ca.certificate
            if issuer.subject != certificate.issuer:
                continue
            try:
                certificate.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue  # a CA of the same name with another key (rollover): not this certificate's issuer
            return ca
        return None

    def _crl(self, ca: CAInfo) -> bytes | None:
        from ca.service_errors import CRLUnavailable

        service = _ca_of(self._platform)
        try:
            crl = service.latest_crl(ca.name)
            if crl.next_update <= self._platform.clock():
                crl = service.publish_crl(ca.name)
        except CRLUnavailable:
            crl = service.publish_crl(ca.name)
        return crl.der

    def revocation_info(self, certificates: Sequence[bytes]) -> RevocationInfo:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp

        from signing import RevocationInfo

        service = _ca_of(self._platform)
        cas = service.list_cas()
        crls: list[bytes] = []
        responses: list[bytes] = []
        extra: list[bytes] = []
        seen_cas: set[int] = set()
        for der in certificates:
            certificate = x509.load_der_x509_certificate(der)
            if certificate.issuer == certificate.subject:
                continue
            ca = self._issuer_of(certificate, cas)
            if ca is None:
                continue
            if ca.id not in seen_cas:
                seen_cas.add(ca.id)
                crl = self._crl(ca)
                if crl is not None:
                    crls.append(crl)
                extra.append(ca.certificate_der)
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate(certificate, ca.certificate, hashes.SHA256())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            answer = service.ocsp_respond(request)
            if answer.status in ("good", "revoked"):
                responses.append(answer.der)
        return RevocationInfo(crls=tuple(crls), ocsp_responses=tuple(responses), certificates=tuple(extra))


# -- signers -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SignerChoice:
    """A signer ready to use and what the record says about it."""

    signer: KeyStoreSigner
    certificate: CertificateInfo
    seal: str | None = None
    signatory: str | None = None

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial, "x")


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asks for a signature, independent of HTTP: ``kind`` is ``user``, ``service``, ``token`` or ``cli``."""

    kind: str
    name: str
    roles: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


def seal_allows(seal: SigningSealSettings, caller: Caller) -> bool:
    """Whether the seal's rule admits ``caller`` (by login, by role, or by API token name)."""
    if caller.kind == "token":
        return caller.name in seal.allowed_tokens
    if caller.kind in ("user", "service"):
        return caller.name in seal.allowed_users or bool(set(caller.roles) & set(seal.allowed_roles))
    return False


class SigningPlatform:
    """Signing as the platform offers it: key choice, cached signers, TSA, revocation, records."""

    def __init__(self, platform: Platform, records: SignatureService) -> None:
        from signing import ProviderTimeStamper

        self.platform = platform
        self.records = records
        self.revocation = CARevocation(platform)
        self.timestamper = ProviderTimeStamper(self._stamp)
        self._signers: dict[tuple[str, str], KeyStoreSigner] = {}
        self._lock = threading.Lock()
        self._roots: tuple[float, list[bytes]] = (0.0, [])
        self._ca_names: dict[int, str] = {}

    @property
    def settings(self) -> Any:
        return self.platform.settings.signing

    # -- collaborators ------------------------------------------------------------------------------

    def _stamp(self, request_der: bytes) -> bytes:
        from timestamp.service import TimestampService
        from timestamp.service_errors import TSAUnavailable

        tsa = self.platform.services.get("tsa")
        if not isinstance(tsa, TimestampService):
            raise TSAUnavailable("the timestamp authority is not available", detail_zh="时间戳服务不可用")
        return tsa.stamp(request_der, actor=_TSA_ACTOR.get(), source="signing").der

    def trust_roots(self) -> list[bytes]:
        """The platform's root CA certificates (DER), re-read at most once a minute."""
        loaded_at, roots = self._roots
        if roots and time.monotonic() - loaded_at < TRUST_CACHE_SECONDS:
            return roots
        roots = [ca.certificate_der for ca in _ca_of(self.platform).list_cas() if ca.is_root]
        self._roots = (time.monotonic(), roots)
        return roots

    def limits(self) -> Any:
        from signing import PdfLimits

        return PdfLimits(max_bytes=self.settings.max_upload_bytes, max_pages=self.settings.max_pages)

    def _signer_for(self, info: CertificateInfo) -> KeyStoreSigner:
        from core.keys.pyhanko_signer import KeyStoreSigner

        assert info.key_id is not None and info.der is not None and info.fingerprint_sha256 is not None
        cache_key = (info.key_id, info.fingerprint_sha256)
        with self._lock:
            cached = self._signers.get(cache_key)
            if cached is not None:
                return cached
        chain = [_asn1(ca.certificate_der) for ca in _ca_of(self.platform).chain(info.ca)]
        signer = KeyStoreSigner(self.platform.keystore, info.key_id, _asn1(info.der), chain)
        with self._lock:
            return self._signers.setdefault(cache_key, signer)

    def _usable(self, info: CertificateInfo) -> bool:
        now = self.platform.clock()
        return (
            info.status == "issued"
            and info.key_mode == "custodial"
            and bool(info.key_id)
            and info.der is not None
            and info.not_before <= now < info.not_after
        )

    def personal_signer(self, login: str) -> SignerChoice:
        """The newest valid custodial person-sign certificate owned by ``user:<login>``.

        Raises :class:`signing.service.NoSigningCertificate`.
        """
        from ca.service import CertificateQuery
        from signing.service import NoSigningCertificate

        found = _ca_of(self.platform).search(
            CertificateQuery(owner=f"user:{login}", profile=PERSON_PROFILE, status="issued", limit=1000)
        )
        usable = [info for info in found if self._usable(info)]
        if not usable:
            raise NoSigningCertificate(
                "you have no valid personal signing certificate with a key held by the platform",
                detail_zh="您没有由平台保管密钥的有效个人签名证书",
            )
        info = max(usable, key=lambda c: (c.not_before, c.id))
        return SignerChoice(self._signer_for(info), info, signatory=login)

    def _seal_certificate(self, reference: str) -> CertificateInfo | None:
        """The seal's certificate as stored now, or ``None`` when there is no such certificate.

        Read in a snapshot transaction: on every seal signature, so it must not take SQLite's write lock (which
        the TSA's and the signature's records need right after).
        """
        from ca import store as ca_store
        from ca.service_errors import CAError

        with self.platform.read_transaction() as session:
            try:
                row = ca_store.certificate_row(session, reference)
            except CAError:
                return None
            if row.ca_id not in self._ca_names:
                # CA names never change; remember them as the CA service does.
                self._ca_names.update(ca_store.ca_names(session))
            return ca_store.certificate_info(row, self._ca_names[row.ca_id])

    def seal_settings(self, name: str) -> SigningSealSettings | None:
        return next((seal for seal in self.settings.seals if seal.name == name), None)

    def seal_signer(self, name: str, caller: Caller, *, source: str = "", enforce_rule: bool = True) -> SignerChoice:
        """The signer of seal ``name`` if its rule admits ``caller`` (the CLI operator path skips the rule).

        Raises :class:`SealNotAllowed` (also for unknown seals, audited as denied) and :class:`SealUnavailable`.
        """
        from signing.service import SealNotAllowed, SealUnavailable

        seal = self.seal_settings(name)
        if seal is None or (enforce_rule and not seal_allows(seal, caller)):
            self.records.record_refusal(
                actor=caller.actor,
                action="signature.seal_use",
                target=f"seal:{name[:64]}",
                source=source,
                details={"reason": "unknown seal" if seal is None else "not allowed by the seal's rule"},
            )
            raise SealNotAllowed(f"you may not sign with the seal {name[:64]!r}", detail_zh="您无权使用该电子印章")
        info = self._seal_certificate(seal.certificate)
        if info is None or not self._usable(info) or info.profile != SEAL_PROFILE:
            raise SealUnavailable(
                f"the certificate of seal {name!r} is missing, not valid, or not a custodial organisation-seal "
                "certificate",
                detail_zh=f"电子印章 {name} 的证书不存在、无效或不是平台保管的机构印章证书",
                seal=name,
            )
        return SignerChoice(self._signer_for(info), info, seal=name)

    # -- operations -------------------------------------------------------------------------------------

    def _record(
        self, kind: str, document: bytes, output: bytes, choice: SignerChoice, level: str, caller: Caller,
        source: str, details: dict[str, Any],
    ) -> SignatureRecord:
        from signing.service import NewSignature

        assert choice.certificate.key_id is not None and choice.certificate.fingerprint_sha256 is not None
        return self.records.record(
            NewSignature(
                kind=kind,
                document=document,
                output=output,
                signer_serial=choice.serial_hex,
                signer_fingerprint=choice.certificate.fingerprint_sha256,
                signer_subject=choice.certificate.subject,
                key_id=choice.certificate.key_id,
                level=level,
                requester=caller.actor,
                seal=choice.seal,
                signatory=choice.signatory,
                source=source,
                details=details,
            )
        )

    def sign_pdf(
        self,
        document: bytes,
        choice: SignerChoice,
        caller: Caller,
        *,
        level: str | None = None,
        visible: VisibleSignature | None = None,
        reason: str | None = None,
        location: str | None = None,
        contact: str | None = None,
        field_name: str | None = None,
        source: str = "",
        details: dict[str, Any] | None = None,
    ) -> tuple[bytes, SignatureRecord]:
        """Sign a PDF (blocking: call from a worker thread) and record it before returning the output."""
        from signing import sign_pdf

        chosen = level or self.settings.default_level
        token = _TSA_ACTOR.set(caller.actor)
        try:
            signed = sign_pdf(
                document,
                choice.signer,
                level=chosen,
                limits=self.limits(),
                timestamper=self.timestamper,
                revocation=self.revocation,
                trust_roots=self.trust_roots(),
                visible=visible,
                reason=reason,
                location=location,
                contact=contact,
                field_name=field_name,
            )
        finally:
            _TSA_ACTOR.reset(token)
        record = self._record("pdf", document, signed, choice, chosen, caller, source, dict(details or {}))
        return signed, record

    def sign_cms(
        self,
        content: bytes,
        choice: SignerChoice,
        caller: Caller,
        *,
        level: str = "B-T",
        source: str = "",
        details: dict[str, Any] | None = None,
    ) -> tuple[bytes, SignatureRecord]:
        """A detached CAdES signature (B-B or B-T) over ``content``, recorded before it is returned."""
        from signing import sign_cms_detached

        token = _TSA_ACTOR.set(caller.actor)
        try:
            p7s = sign_cms_detached(
                content, choice.signer, level=level, timestamper=self.timestamper,
                max_bytes=self.settings.max_upload_bytes,
            )
        finally:
            _TSA_ACTOR.reset(token)
        record = self._record("cms", content, p7s, choice, level, caller, source, dict(details or {}))
        return p7s, record

    def timestamp_pdf(
        self, document: bytes, caller: Caller, *, source: str = "", details: dict[str, Any] | None = None
    ) -> tuple[bytes, SignatureRecord]:
        """Add a document timestamp and the TSA's validation data; recorded with the TSA certificate as signer."""
        from signing import add_document_timestamp
        from timestamp.service import TimestampService
        from timestamp.service_errors import TSAUnavailable

        tsa = self.platform.services.get("tsa")
        credentials = tsa.credentials if isinstance(tsa, TimestampService) else None
        if credentials is None:
            raise TSAUnavailable("the timestamp authority has no certificate", detail_zh="时间戳服务没有证书")
        token = _TSA_ACTOR.set(caller.actor)
        try:
            stamped = add_document_timestamp(
                document, self.timestamper, limits=self.limits(), revocation=self.revocation,
                trust_roots=self.trust_roots(),
            )
        finally:
            _TSA_ACTOR.reset(token)
        from cryptography.hazmat.primitives.serialization import Encoding

        from signing.service import NewSignature

        certificate = credentials.certificate
        record = self.records.record(
            NewSignature(
                kind="doc-timestamp",
                document=document,
                output=stamped,
                signer_serial=format(certificate.serial_number, "x"),
                signer_fingerprint=hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest(),
                signer_subject=certificate.subject.rfc4514_string(),
                key_id=credentials.key_id or "",
                level="DTS",
                requester=caller.actor,
                source=source,
                details=dict(details or {}),
            )
        )
        return stamped, record

    def verify_pdf(self, document: bytes, *, etsi_report: bool = False) -> VerificationReport:
        from signing import verify_pdf

        return verify_pdf(
            document, trust_roots=self.trust_roots(), revocation=self.revocation, limits=self.limits(),
            etsi_report=etsi_report,
        )

    def verify_cms(self, signature: bytes, content: bytes) -> VerificationReport:
        from signing import verify_cms
        from signing.errors import ContentTooLarge

        if len(content) > self.settings.max_upload_bytes:
            raise ContentTooLarge(
                f"the content is larger than {self.settings.max_upload_bytes} bytes",
                detail_zh="待验证内容过大", limit=self.settings.max_upload_bytes,
            )
        return verify_cms(signature, content, trust_roots=self.trust_roots(), revocation=self.revocation)


def report_json(report: VerificationReport) -> dict[str, Any]:
    """The verification report as JSON-ready values (times in RFC 3339 UTC)."""
    from core.clock import isoformat_utc

    def value(item: Any) -> Any:
        if isinstance(item, dt.datetime):
            return isoformat_utc(item)
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return {f.name: value(getattr(item, f.name)) for f in dataclasses.fields(item)}
        if isinstance(item, tuple | list):
            return [value(i) for i in item]
        if hasattr(item, "value") and isinstance(getattr(item, "value", None), str):
            return item.value
        return item

    body: dict[str, Any] = value(report)
    body["all_ok"] = report.all_ok
    for entry, signature in zip(body["signatures"], report.signatures, strict=True):
        entry["ok"] = signature.ok
    return body


# -- hooks -----------------------------------------------------------------------------------------------


def service_of(platform: Platform) -> SigningPlatform:
    from core.errors import ConfigurationError

    service = platform.services.get("signing")
    if not isinstance(service, SigningPlatform):
        raise ConfigurationError("signing is not available: run `hengxin init` first")
    return service


def open_hook(platform: Platform) -> None:
    """Build the signing service (nothing is loaded until the first signature)."""
    from signing.service import SignatureService

    if platform.audit is None:
        return
    records = SignatureService(
        platform.sessions, platform.audit, platform.clock, keep_signed_files=platform.settings.signing.keep_signed_files
    )
    platform.services["signing"] = SigningPlatform(platform, records)


def router() -> APIRouter:
    from api.routes.signing import router as signing_router

    return signing_router


def __getattr__(name: str) -> Any:
    # The CLI groups are imported lazily: api.cli imports this module while it is itself being imported.
    if name == "CLI_GROUPS":
        from api.cli_signing import sign_app, verify_app

        return {"sign": sign_app, "verify": verify_app}
    raise AttributeError(name)
