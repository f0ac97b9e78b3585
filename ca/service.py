"""The certificate authority service: hierarchy, issuance, renewal, revocation, CRL, OCSP, validation.

:class:`CAService` is what the HTTP routes, the CLI and the other components
call.  It takes its collaborators (database sessions, key store, audit log,
alert channel, clock, options, profiles) from the composition root and
imports nothing from FastAPI or typer.

Issuance is two transactions around one signature:

1. the serial number (127 random bits) is **reserved**: a ``reserved`` row is
   committed under the issuing CA, the unique constraint on (CA, serial)
   refusing a collision, which is retried with a new number;
2. the certificate is signed with the CA's key from the key store;
3. the signed DER, the status ``issued`` and the audit record are committed
   together, before anything is returned.

Concurrent requests share those transactions (:class:`ca.store.GroupCommit`):
the reservations that arrive while one is being committed go in the next
transaction together, and so do the signed certificates with their audit
records.  A lone request is written at once, as before; under load one
commit (one fsync, one audit head read) serves many certificates.

A crash between 1 and 3 leaves a ``reserved`` row (OCSP says ``unknown``)
and never a certificate the database does not know.  Every request is
checked against its profile before step 1, so bad input writes nothing.

A revocation updates one certificate row, marks the CA's CRL dirty, appends
one audit record and drops the OCSP cache entry: its cost does not depend on
how many certificates are revoked.  CRLs are rebuilt by the publisher
(``ca/crl_publisher.py``), coalesced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import Table, and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased, sessionmaker

from ca import store
from ca._common import certificate_pem
from ca.certificates import NameConstraints, PublicationURLs, build_certificate, build_name, new_serial, parse_csr
from ca.crl_publisher import CRLPublisher, PublishedCRL
from ca.errors import CAError, ProfileConfigurationError, ProfileViolation
from ca.models import (
    CA_ACTIVE,
    CA_OFFLINE,
    CA_PENDING,
    CA_REVOKED,
    FAILED,
    HOLD,
    ISSUED,
    RESERVED,
    REVOKED,
    CertificateAuthorityRow,
    CertificateRow,
    CRLRow,
)
from ca.ocsp_responder import OCSPAnswer, OCSPResponder
from ca.offline import (
    ImportRefused,
    RolloverRefused,
    build_ca_csr,
    check_imported_certificate,
    crl_number,
    load_certificates_pem_or_der,
    load_crl_pem_or_der,
)
from ca.pkcs12 import check_password, export_pkcs12, generate_private_key
from ca.profiles import KeyType, Profile, ProfileSet, SubjectAltNames, load_profiles
from ca.service_errors import (
    AlreadyRevoked,
    CertificateNotIssued,
    CRLStale,
    CRLUnavailable,
    DuplicateCAName,
    InvalidIssueRequest,
    NotOnHold,
    ProfileRestricted,
    RevocationInvalid,
    RootNotRevocable,
    SerialExhausted,
    UnknownCA,
)
from ca.store import CAInfo, CertificateInfo, fingerprint, format_serial
from ca.validation import PURPOSES, PurposeCheck, check_purpose, load_certificate, load_certificates, validate_path
from core.alerts import AlertChannel, Severity
from core.audit import AuditEvent, AuditLog
from core.clock import Clock, isoformat_utc
from core.errors import DatabaseUnavailable, HengxinError
from core.jobs import claim_run, lease_holder
from core.keys.base import KeyStore
from core.store import read_only_engine, read_transaction, transaction

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger("hengxin.ca")

_CA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_OWNER = re.compile(r"[a-z][a-z0-9_-]{0,31}:[^\s\x00-\x1f]{1,160}")
# Certificates start a minute in the past, so relying parties whose clocks lag a little accept them.
BACKDATE = dt.timedelta(minutes=1)
SERIAL_ATTEMPTS = 5
REVOCATION_REASONS: tuple[str, ...] = tuple(
    r.value for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl
)
KEY_MODES = ("csr", "server", "custodial")


_CERTIFICATES = cast(Table, CertificateRow.__table__)
_AUTHORITIES = cast(Table, CertificateAuthorityRow.__table__)
# The statements of the issuance and revocation paths, built once: building and hashing a statement per call
# costs more than running it.  They run on the session's Core connection, past the ORM layer.
_RESERVE = insert(_CERTIFICATES).returning(_CERTIFICATES.c.id)
_RESERVE_MANY = insert(_CERTIFICATES).returning(_CERTIFICATES.c.id, sort_by_parameter_order=True)
_STORE_SIGNED = (
    update(_CERTIFICATES)
    .where(_CERTIFICATES.c.id == bindparam("row_id"))
    .values(der=bindparam("row_der"), fingerprint_sha256=bindparam("row_fingerprint"), status=ISSUED)
)
_SET_REVOCATION = (
    update(_CERTIFICATES)
    .where(_CERTIFICATES.c.id == bindparam("row_id"), _CERTIFICATES.c.status == bindparam("old_status"))
    .values(
        status=bindparam("new_status"),
        revoked_at=bindparam("new_revoked_at"),
        revocation_reason=bindparam("new_reason"),
        invalidity_date=bindparam("new_invalidity_date"),
    )
)
_MARK_DIRTY = (
    update(_AUTHORITIES)
    .where(_AUTHORITIES.c.id == bindparam("ca_id"))
    .values(
        crl_dirty_since=func.coalesce(
            _AUTHORITIES.c.crl_dirty_since, bindparam("dirty_since", type_=_AUTHORITIES.c.crl_dirty_since.type)
        ),
        revocation_version=_AUTHORITIES.c.revocation_version + 1,
    )
)

# Runs inside the transaction that commits a new certificate, with the row as committed (the columns of
# ``ca_certificates`` as attributes); may return extra audit details.
CommitHook = Callable[[Session, Any, x509.Certificate], Mapping[str, Any] | None]


@dataclasses.dataclass(frozen=True)
class CAOptions:
    """The settings the CA service uses (from ``[instance] base_url`` and ``[ca]``)."""

    base_url: str = "http://127.0.0.1:8000"
    algorithm: str = "ec-p256"
    root_algorithm: str = ""
    root_name: str = "root"
    issuing_name: str = "issuing"
    organisation: str = "Hengxin"
    country: str = "CN"
    end_entity_algorithm: str = "ec-p256"
    crl_validity: dt.timedelta = dt.timedelta(hours=24)
    crl_min_interval: dt.timedelta = dt.timedelta(seconds=60)
    crl_keep: int = 5
    ocsp_validity: dt.timedelta = dt.timedelta(hours=4)
    ocsp_max_age: dt.timedelta = dt.timedelta(minutes=5)
    ocsp_cache_entries: int = 100_000
    ocsp_responder_renew_before: dt.timedelta = dt.timedelta(days=2)
    expiry_warning: dt.timedelta = dt.timedelta(days=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> CAOptions:
        section = settings.ca
        return cls(
            base_url=settings.instance.base_url,
            algorithm=section.algorithm,
            root_algorithm=section.root_algorithm,
            root_name=section.root_name,
            issuing_name=section.issuing_name,
            organisation=section.organisation,
            country=section.country,
            end_entity_algorithm=section.end_entity_algorithm,
            crl_validity=dt.timedelta(hours=section.crl_validity_hours),
            crl_min_interval=dt.timedelta(seconds=section.crl_min_interval_seconds),
            crl_keep=section.crl_keep,
            ocsp_validity=dt.timedelta(minutes=section.ocsp_validity_minutes),
            ocsp_max_age=dt.timedelta(seconds=section.ocsp_max_age_seconds),
            ocsp_cache_entries=section.ocsp_cache_entries,
            ocsp_responder_renew_before=dt.timedelta(days=section.ocsp_responder_renew_days),
            expiry_warning=dt.timedelta(days=section.expiry_warning_days),
        )


def profiles_from_file(path: Path | None) -> ProfileSet:
    """The shipped profiles with the overrides of a YAML file (``{profile: {field: value}}``), if any.

    Raises:
        ProfileConfigurationError: the file cannot be read or is invalid.
    """
    if path is None:
        return load_profiles()
    try:
        overrides = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ProfileConfigurationError(f"cannot read the profiles file {path}: {type(e).__name__}") from e
    if not isinstance(overrides, dict):
        raise ProfileConfigurationError(f"{path}: must map profile names to fields")
    return load_profiles(overrides)


@dataclasses.dataclass(frozen=True)
class IssueRequest:
    """What to issue.

    ``key_mode`` is ``csr`` (the requester holds the key; ``csr`` is a PEM or
    DER PKCS #10 request whose subject and SANs are used unless ``subject``
    or ``sans`` are given), ``server`` (a key is generated in memory and
    returned once as PKCS #12 under ``pkcs12_password``) or ``custodial`` (a
    key is generated in the key store for ``owner`` and never exported).
    """

    profile: str
    ca: str | None = None
    key_mode: str = "csr"
    csr: bytes | None = dataclasses.field(default=None, repr=False)
    subject: Mapping[str, str | Sequence[str]] | None = None
    sans: SubjectAltNames | None = None
    validity_days: int | None = None
    owner: str | None = None
    pkcs12_password: str | None = dataclasses.field(default=None, repr=False)
    key_algorithm: str | None = None


@dataclasses.dataclass(frozen=True)
class IssueResult:
    """An issued certificate, the chain above it (issuing CA first, root last) and, for server keys,
    the PKCS #12 file (shown once, never stored)."""

    certificate: CertificateInfo
    chain: tuple[bytes, ...] = dataclasses.field(repr=False)
    pkcs12: bytes | None = dataclasses.field(default=None, repr=False)

    @property
    def chain_pem(self) -> bytes:
        return b"".join(certificate_pem(der) for der in self.chain)


@dataclasses.dataclass(frozen=True)
class _Signed:
    """A signed certificate whose reserved row is to be completed, and its audit event."""

    info: CertificateInfo
    event: AuditEvent


@dataclasses.dataclass(frozen=True)
class _Revocation:
    """One revocation (or hold) waiting for its group's transaction."""

    reference: str | int
    actor: str
    reason: str
    invalidity_date: dt.datetime | None
    now: dt.datetime
    hold: bool


@dataclasses.dataclass(frozen=True)
class CertificateQuery:
    """Filters of a certificate search; ``after_id`` is the pagination key (ids ascending)."""

    subject: str | None = None
    serial: int | None = None
    status: str | None = None
    profile: str | None = None
    owner: str | None = None
    ca: str | None = None
    expires_before: dt.datetime | None = None
    expires_after: dt.datetime | None = None
    after_id: int = 0
    limit: int = 50


@dataclasses.dataclass(frozen=True)
class PathEntry:
    subject: str
    serial: str
    fingerprint_sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    ca: str | None = None  # our CA whose certificate this is
    certificate_id: int | None = None  # our record of this certificate


@dataclasses.dataclass(frozen=True)
class RevocationReport:
    status: str  # good | revoked | hold | unknown | not_checked
    source: str | None  # database | crl
    revoked_at: dt.datetime | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class ValidationReport:
    """The answer of the validation service."""

    valid: bool
    code: str
    reason: str | None
    validation_time: dt.datetime
    path: tuple[PathEntry, ...]
    trust_root: PathEntry | None
    not_before: dt.datetime
    not_after: dt.datetime
    valid_at_time: bool
    purpose: PurposeCheck
    revocation: RevocationReport


class CAService:
    """Certificate authorities and their certificates.  Safe to share between threads."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        keystore: KeyStore,
        audit: AuditLog,
        alerts: AlertChannel,
        clock: Clock,
        options: CAOptions,
        profiles: ProfileSet,
    ) -> None:
        self.sessions = sessions
        self.keystore = keystore
        self.audit = audit
        self.alerts = alerts
        self.clock = clock
        self.options = options
        self.profiles = profiles
        self.holder = lease_holder("ca:")
        self.publisher = CRLPublisher(
            sessions,
            keystore,
            clock,
            validity=options.crl_validity,
            min_interval=options.crl_min_interval,
            keep=options.crl_keep,
        )
        self.ocsp = OCSPResponder(
            sessions, keystore, clock, validity=options.ocsp_validity, cache_entries=options.ocsp_cache_entries
        )
        self._names: dict[int, str] = {}
        self._snapshots = read_only_engine(sessions)
        # Concurrent issuance shares transactions (and their fsyncs): reservations in one group, the signed
        # certificates with their audit records in another.  Each caller still returns only after its own
        # rows committed.
        self._reservations: store.GroupCommit[dict[str, Any], tuple[int, int]] = store.GroupCommit(
            self._reserve_group
        )
        self._issued: store.GroupCommit[_Signed, CertificateInfo] = store.GroupCommit(self._commit_signed)
        # Concurrent revocations share a transaction the same way.
        self._revocations: store.GroupCommit[_Revocation, tuple[Any, CertificateInfo]] = store.GroupCommit(
            self._revoke_group
        )

    def start(self) -> None:
        """Load the OCSP responders (call once after construction; cheap when there is no CA yet)."""
        self.ocsp.load()

    def close(self) -> None:
        """Close the OCSP responder's own database connections (the platform calls this when it closes)."""
        self.ocsp.close()

    # -- authorities ------------------------------------------------------------------------------------

    def list_cas(self) -> list[CAInfo]:
        with transaction(self.sessions) as session:
            return store.list_cas(session)

    def get_ca(self, name: str) -> CAInfo:
        """The CA called ``name``; raises UnknownCA."""
        with transaction(self.sessions) as session:
            row = store.ca_row_by_name(session, name)
            return store.ca_info(row, store.ca_names(session))

    def chain(self, name: str) -> list[CAInfo]:
        """The CA called ``name`` and its ancestors, up to and including the root."""
        with transaction(self.sessions) as session:
            names = store.ca_names(session)
            row = store.ca_row_by_name(session, name)
            chain = [store.ca_info(row, names)]
            while row.parent_id is not None:
                parent = session.get(CertificateAuthorityRow, row.parent_id)
                assert parent is not None
                row = parent
                chain.append(store.ca_info(row, names))
        return chain

    def ensure_hierarchy(self, *, actor: str) -> tuple[CAInfo, CAInfo]:
        """The root and issuing CAs named in the options, created if they do not exist (``hengxin init``)."""
        existing = {ca.name: ca for ca in self.list_cas()}
        root = existing.get(self.options.root_name)
        if root is None:
            root = self.create_ca(
                self.options.root_name,
                parent=None,
                algorithm=self.options.root_algorithm or self.options.algorithm,
                common_name=f"{self.options.organisation} Root CA",
                actor=actor,
            )
        issuing = existing.get(self.options.issuing_name)
        if issuing is None:
            issuing = self.create_ca(
                self.options.issuing_name,
                parent=root.name,
                common_name=f"{self.options.organisation} Issuing CA",
                path_length=0,
                actor=actor,
            )
        return root, issuing

    def create_ca(
        self,
        name: str,
        *,
        parent: str | None,
        actor: str,
        algorithm: str | None = None,
        common_name: str | None = None,
        subject: Mapping[str, str | Sequence[str]] | None = None,
        path_length: int | None = None,
        name_constraints: NameConstraints | None = None,
        validity_days: int | None = None,
    ) -> CAInfo:
        """Create a root (``parent=None``) or a subordinate CA, with its OCSP responder and first CRL.

        Raises:
            InvalidIssueRequest: bad name or algorithm.
            DuplicateCAName: the name is taken.
            UnknownCA, CAInactive: the parent.
            ProfileViolation: subject, key type, validity, path length or name constraints.
        """
        if not _CA_NAME.fullmatch(name):
            raise InvalidIssueRequest(
                "a CA name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
                detail_zh="CA 名称须为 1 到 63 个字母、数字、'.'、'_' 或 '-'", rule="ca_name",
            )
        profile = self.profiles.get("root-ca" if parent is None else "sub-ca")
        key_type = self._key_type(algorithm or self.options.algorithm, profile)
        if subject is None:
            cn = common_name or f"{self.options.organisation} {name} CA"
            subject = {"C": self.options.country, "O": self.options.organisation, "CN": cn[:64]}
        subject_values = profile.check_subject(subject)
        if name_constraints is not None:
            if not profile.name_constraints:
                raise ProfileViolation("a root CA carries no name constraints", rule="name_constraints",
                                       detail_zh="根 CA 不能带名称约束")
            name_constraints.extension()  # validates the subtrees
        with transaction(self.sessions) as session:
            if session.execute(select(CertificateAuthorityRow.id).where(CertificateAuthorityRow.name == name)).first():
                raise DuplicateCAName(f"a CA named {name!r} exists", detail_zh=f"名为 {name!r} 的 CA 已存在", ca=name)
            parent_info = None
            if parent is not None:
                parent_row = store.active_ca_row(session, parent)
                parent_info = store.ca_info(parent_row, store.ca_names(session))
        if parent_info is not None:
            parent_length = parent_info.path_length
            if parent_length == 0:
                raise ProfileViolation(f"CA {parent!r} has pathLenConstraint 0: it cannot have sub-CAs",
                                       rule="path_length",
                                       detail_zh=f"CA {parent!r} 的路径长度约束为 0，不能创建下级 CA")
            if path_length is None:
                path_length = profile.path_length if profile.path_length is not None else 0
                if parent_length is not None:
                    path_length = min(path_length, parent_length - 1)
            elif path_length < 0 or (parent_length is not None and path_length >= parent_length):
                raise ProfileViolation(f"path_length must be between 0 and {(parent_length or 1) - 1}",
                                       rule="path_length", detail_zh="路径长度超出上级 CA 的约束")
        elif path_length is not None:
            raise ProfileViolation("a root CA has no pathLenConstraint here", rule="path_length",
                                   detail_zh="根 CA 不设置路径长度约束")
        issuer_not_after = parent_info.not_after if parent_info is not None else None
        not_before, not_after = self._validity(profile, issuer_not_after, validity_days)
        key = self.keystore.generate(f"ca:{name}", key_type.value)
        public_key = key.public_key()
        now = self.clock()
        try:
            with transaction(self.sessions) as session:
                ca_row = CertificateAuthorityRow(
                    name=name,
                    parent_id=parent_info.id if parent_info is not None else None,
                    key_id=key.key_id,
                    certificate_der=b"",
                    status=CA_PENDING,
                    created_at=now,
                    crl_number=0,
                    revocation_version=0,
                )
                session.add(ca_row)
                session.flush()
                ca_id = ca_row.id
        except IntegrityError:
            raise DuplicateCAName(f"a CA named {name!r} exists", detail_zh=f"名为 {name!r} 的 CA 已存在",
                                  ca=name) from None
        if parent_info is None:
            issuer_id, issuer_name, issuer_cert, issuer_key_id = ca_id, name, None, key.key_id
        else:
            issuer_id, issuer_name = parent_info.id, parent_info.name
            issuer_cert, issuer_key_id = parent_info.certificate, parent_info.key_id

        def activate(session: Session, row: Any, certificate: x509.Certificate) -> None:
            session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.id == ca_id)
                .values(
                    certificate_der=certificate.public_bytes(serialization.Encoding.DER),
                    status=CA_ACTIVE,
                    certificate_id=row.id,
                )
            )
            self.audit.append(
                session,
                actor=actor,
                action="ca.create",
                target=f"ca:{name}",
                details={
                    "parent": parent,
                    "subject": certificate.subject.rfc4514_string(),
                    "serial": format_serial(certificate.serial_number),
                    "algorithm": key_type.value,
                    "key_id": key.key_id,
                    "path_length": path_length,
                    "name_constraints": name_constraints is not None,
                    "fingerprint_sha256": fingerprint(certificate.public_bytes(serialization.Encoding.DER)),
                },
            )

        try:
            self._sign_and_record(
                issuer_id=issuer_id,
                issuer_name=issuer_name,
                issuer_cert=issuer_cert,
                issuer_key_id=issuer_key_id,
                profile=profile,
                subject_values=subject_values,
                public_key=public_key,
                sans=SubjectAltNames(),
                not_before=not_before,
                not_after=not_after,
                key_mode="ca",
                key_id=key.key_id,
                owner=f"ca:{name}",
                actor=actor,
                action="certificate.issue",
                path_length=path_length,
                name_constraints=name_constraints,
                on_commit=activate,
            )
        except Exception:
            self._discard_pending_ca(ca_id)
            raise
        ca = self.get_ca(name)
        self._names[ca.id] = name
        ca = self._issue_responder(ca, actor=actor)
        self.publisher.publish_now(ca.id, self.holder)
        self.ocsp.load()
        log.info("created CA", extra={"ca": name, "parent": parent})
        return ca

    # -- issuance ---------------------------------------------------------------------------------------

    def issue(
        self,
        request: IssueRequest,
        *,
        actor: str,
        privileged: bool = False,
        on_commit: CommitHook | None = None,
    ) -> IssueResult:
        """Issue an end-entity certificate; see :class:`IssueRequest`.

        Profiles whose certificates speak for the CA (a delegated OCSP responder: id-kp-OCSPSigning)
        are issued only when ``privileged`` (the caller may manage CAs).  ``on_commit`` runs inside the
        transaction that commits the certificate (e.g. the registration authority marks its request
        issued there); details it returns are added to the ``certificate.issue`` audit record.

        Raises:
            ProfileRestricted: such a profile without ``privileged``.
            UnknownProfile, UnknownCA, CAInactive, InvalidIssueRequest,
            CSRInvalid, CSRSignatureInvalid, UnsupportedKey, ProfileViolation,
            PKCS12PasswordInvalid.  Nothing is written when one of these is raised.
        """
        profile = self.profiles.get(request.profile)
        if profile.ca:
            raise InvalidIssueRequest(f"profile {profile.name} is for CAs: use the CA commands",
                                      detail_zh=f"证书模板 {profile.name} 用于 CA，请使用 CA 管理功能", rule="profile")
        if not privileged and _speaks_for_the_ca(profile):
            raise ProfileRestricted(f"certificates of profile {profile.name} speak for the CA: "
                                    "issuing them needs permission to manage CAs",
                                    detail_zh=f"证书模板 {profile.name} 的证书代表 CA，签发需要 CA 管理权限",
                                    profile=profile.name)
        ca, chain = self._issuer(request.ca or self.options.issuing_name)
        mode = request.key_mode
        if mode not in KEY_MODES:
            raise InvalidIssueRequest(f"key mode must be one of {', '.join(KEY_MODES)}",
                                      detail_zh="密钥模式无效", rule="key_mode")
        public_key: CertificatePublicKeyTypes | None = None
        subject = request.subject
        sans = request.sans
        key_type: KeyType | None = None
        owner = request.owner
        if mode == "csr":
            if request.csr is None:
                raise InvalidIssueRequest("a CSR is required in csr mode", detail_zh="需要提供证书签名请求",
                                          rule="csr_required")
            csr = parse_csr(request.csr)
            public_key = csr.public_key
            subject = subject if subject is not None else csr.subject_attributes
            sans = sans if sans is not None else csr.sans
            profile.check_key(public_key)
        else:
            if request.csr is not None:
                raise InvalidIssueRequest(f"no CSR in {mode} mode: the key is generated here",
                                          detail_zh="该模式由服务端生成密钥，不接受证书签名请求",
                                          rule="csr_not_allowed")
            key_type = self._key_type(request.key_algorithm, profile, end_entity=True)
            if mode == "server":
                check_password(request.pkcs12_password)
            else:
                owner = self._check_owner(owner)
            if subject is None:
                raise InvalidIssueRequest("a subject is required when the key is generated here",
                                          detail_zh="服务端生成密钥时需要提供主体", rule="subject_required")
        subject_values = profile.check_subject(subject)
        sans = sans if sans is not None else SubjectAltNames()
        profile.check_sans(sans, subject_values)
        not_before, not_after = self._validity(profile, ca.not_after, request.validity_days)
        if public_key is not None:
            self._check_not_issuer_key(public_key, ca)
        # Everything is checked: from here on, keys and rows are created.
        private_key = None
        key_id = None
        if mode == "server":
            assert key_type is not None
            private_key = generate_private_key(key_type)
            public_key = private_key.public_key()
        elif mode == "custodial":
            assert key_type is not None
            info = self.keystore.generate(f"custodial:{owner}", key_type.value)
            key_id = info.key_id
            public_key = info.public_key()
        assert public_key is not None
        certificate = self._sign_and_record(
            issuer_id=ca.id,
            issuer_name=ca.name,
            issuer_cert=ca.certificate,
            issuer_key_id=ca.key_id,
            profile=profile,
            subject_values=subject_values,
            public_key=public_key,
            sans=sans,
            not_before=not_before,
            not_after=not_after,
            key_mode=mode,
            key_id=key_id,
            owner=owner,
            actor=actor,
            action="certificate.issue",
            on_commit=on_commit,
        )
        return self._result(certificate, chain, private_key, request.pkcs12_password)

    def renew(self, reference: str | int, *, actor: str, validity_days: int | None = None) -> IssueResult:
        """A new certificate for the same key, subject and names, from the same CA.

        Raises:
            CertificateNotFound, CertificateNotIssued, AlreadyRevoked, CAInactive, ProfileViolation.
        """
        old, (ca, chain), profile = self._renewable(reference, allow_revoked=False)
        certificate = x509.load_der_x509_certificate(old.der or b"")
        subject_values = profile.check_subject(store.subject_mapping(certificate.subject))
        sans = store.subject_alt_names(certificate)
        not_before, not_after = self._validity(profile, ca.not_after, validity_days)
        renewed = self._sign_and_record(
            issuer_id=ca.id,
            issuer_name=ca.name,
            issuer_cert=ca.certificate,
            issuer_key_id=ca.key_id,
            profile=profile,
            subject_values=subject_values,
            public_key=certificate.public_key(),
            sans=sans,
            not_before=not_before,
            not_after=not_after,
            key_mode=old.key_mode,
            key_id=old.key_id,
            owner=old.owner,
            actor=actor,
            action="certificate.renew",
            renewal_of=old.id,
        )
        return self._result(renewed, chain)

    def rekey(
        self,
        reference: str | int,
        *,
        actor: str,
        csr: bytes | None = None,
        pkcs12_password: str | None = None,
        key_algorithm: str | None = None,
        validity_days: int | None = None,
    ) -> IssueResult:
        """A new certificate for the same subject and names with a new key (the old certificate stays as it is).

        The key comes the way it came before: from a new CSR, a new server-generated key (PKCS #12), or a
        new custodial key for the same owner.

        Raises:
            CertificateNotFound, CertificateNotIssued, CAInactive, InvalidIssueRequest, CSRInvalid,
            ProfileViolation, PKCS12PasswordInvalid.
        """
        old, (ca, chain), profile = self._renewable(reference, allow_revoked=True)
        certificate = x509.load_der_x509_certificate(old.der or b"")
        subject_values = profile.check_subject(store.subject_mapping(certificate.subject))
        sans = store.subject_alt_names(certificate)
        not_before, not_after = self._validity(profile, ca.not_after, validity_days)
        mode = old.key_mode
        private_key = None
        key_id = None
        if mode == "csr":
            if csr is None:
                raise InvalidIssueRequest("re-keying a certificate issued from a CSR needs a new CSR",
                                          detail_zh="重新生成密钥需要新的证书签名请求", rule="csr_required")
            parsed = parse_csr(csr)
            public_key = parsed.public_key
            profile.check_key(public_key)
            if parsed.public_key == certificate.public_key():
                raise InvalidIssueRequest("the CSR has the old key: use renew for the same key",
                                          detail_zh="证书签名请求使用了旧密钥，请改用续期", rule="same_key")
            self._check_not_issuer_key(public_key, ca)
        else:
            key_type = self._key_type(key_algorithm or _key_type_name(certificate.public_key()), profile,
                                      end_entity=True)
            if mode == "server":
                check_password(pkcs12_password)
                private_key = generate_private_key(key_type)
                public_key = private_key.public_key()
            else:
                info = self.keystore.generate(f"custodial:{old.owner}", key_type.value)
                key_id = info.key_id
                public_key = info.public_key()
        rekeyed = self._sign_and_record(
            issuer_id=ca.id,
            issuer_name=ca.name,
            issuer_cert=ca.certificate,
            issuer_key_id=ca.key_id,
            profile=profile,
            subject_values=subject_values,
            public_key=public_key,
            sans=sans,
            not_before=not_before,
            not_after=not_after,
            key_mode=mode,
            key_id=key_id,
            owner=old.owner,
            actor=actor,
            action="certificate.rekey",
            renewal_of=old.id,
        )
        return self._result(rekeyed, chain, private_key, pkcs12_password)

    # -- revocation -------------------------------------------------------------------------------------

    def revoke(
        self,
        reference: str | int,
        *,
        actor: str,
        reason: str = "unspecified",
        invalidity_date: dt.datetime | None = None,
    ) -> CertificateInfo:
        """Revoke a certificate (``certificateHold`` puts it on hold) with an RFC 5280 reason.

        One row update, one dirty mark on the CA, one audit record; the CRL is rebuilt later by
        the publisher and OCSP answers ``revoked`` at once.  Concurrent revocations are committed
        together (one transaction for all of them); each returns once its own has committed.

        Raises:
            RevocationInvalid: unknown reason (removeFromCRL included) or an invalidity date in the future.
            CertificateNotFound, CertificateNotIssued, AlreadyRevoked, RootNotRevocable.
        """
        reason = normalise_reason(reason)
        now = self.clock()
        if invalidity_date is not None:
            if invalidity_date.tzinfo is None:
                raise RevocationInvalid("invalidity_date needs a time zone", detail_zh="invalidity_date 需要时区")
            if invalidity_date > now:
                raise RevocationInvalid("invalidity_date is in the future",
                                        detail_zh="invalidity_date 不能晚于当前时间")
        hold = reason == x509.ReasonFlags.certificate_hold.value
        row, info = self._revocations.submit(_Revocation(reference, actor, reason, invalidity_date, now, hold))
        self.ocsp.invalidate(row.ca_id, row.serial)
        if row.key_mode == "ca":
            self.ocsp.load()
        if row.key_mode == "ocsp" and not hold:
            # A revoked responder certificate (its key may be compromised) is replaced at once, with a new key.
            for ca in self.list_cas():
                if ca.ocsp_certificate_id == row.id and ca.status == CA_ACTIVE:
                    self._issue_responder(ca, actor=actor, new_key=True)
                    self.ocsp.load()
        return info

    def _revoke_group(self, group: list[_Revocation]) -> list[tuple[Any, CertificateInfo] | BaseException]:
        """Apply the revocations of ``group`` in one transaction, with their audit records.

        A revocation the service refuses (unknown certificate, already revoked ...) is refused alone: it
        has written nothing when its error is raised, and the others in the group go ahead.
        """
        results: list[tuple[Any, CertificateInfo] | BaseException] = []
        events: list[AuditEvent] = []
        with transaction(self.sessions) as session:
            for item in group:
                try:
                    row, info, event = self._revoke_in(session, item)
                except CAError as e:
                    results.append(e)
                    continue
                results.append((row, info))
                events.append(event)
            if events:
                self.audit.append_many(session, events)
        return results

    def _revoke_in(self, session: Session, item: _Revocation) -> tuple[Any, CertificateInfo, AuditEvent]:
        """One revocation inside ``session``: checks (raising before any write), row update, dirty mark."""
        row = store.certificate_row(session, item.reference)
        self._check_revocable(row, item.hold)
        new_status = HOLD if item.hold else REVOKED
        changed = session.connection().execute(_SET_REVOCATION, {
            "row_id": row.id, "old_status": row.status, "new_status": new_status, "new_revoked_at": item.now,
            "new_reason": item.reason, "new_invalidity_date": item.invalidity_date,
        })
        if changed.rowcount != 1:
            raise AlreadyRevoked("the certificate was revoked meanwhile", detail_zh="证书已被吊销")
        self._mark_dirty(session, row.ca_id, item.now)
        if row.key_mode == "ca":
            session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.certificate_id == row.id)
                .values(status=CA_REVOKED)
                .execution_options(synchronize_session=False)
            )
        ca_name = self._ca_name(session, row.ca_id)
        event = AuditEvent(
            actor=item.actor,
            action="certificate.hold" if item.hold else "certificate.revoke",
            target=f"certificate:{ca_name}/{format_serial(row.serial)}",
            details={
                "id": row.id,
                "reason": item.reason,
                "previous_status": row.status,
                "invalidity_date": isoformat_utc(item.invalidity_date) if item.invalidity_date else None,
            },
        )
        info = dataclasses.replace(
            store.certificate_info(row, ca_name),
            status=new_status,
            revoked_at=item.now,
            revocation_reason=item.reason,
            invalidity_date=item.invalidity_date,
        )
        return row, info, event

    def release(self, reference: str | int, *, actor: str) -> CertificateInfo:
        """Take a certificate off hold (certificateHold); it is good again in OCSP at once.

        Raises:
            CertificateNotFound, NotOnHold.
        """
        now = self.clock()
        with transaction(self.sessions) as session:
            row = store.certificate_row(session, reference)
            if row.status != HOLD:
                raise NotOnHold(f"the certificate is {row.status}, not on hold", detail_zh="证书未处于冻结状态",
                                status=row.status)
            changed = session.connection().execute(_SET_REVOCATION, {
                "row_id": row.id, "old_status": HOLD, "new_status": ISSUED, "new_revoked_at": None,
                "new_reason": None, "new_invalidity_date": None,
            })
            if changed.rowcount != 1:
                raise NotOnHold("the certificate changed meanwhile", detail_zh="证书状态已改变")
            self._mark_dirty(session, row.ca_id, now)
            if row.key_mode == "ca":
                session.execute(
                    update(CertificateAuthorityRow)
                    .where(CertificateAuthorityRow.certificate_id == row.id)
                    .values(status=CA_ACTIVE)
                    .execution_options(synchronize_session=False)
                )
            ca_name = self._ca_name(session, row.ca_id)
            self.audit.append(
                session,
                actor=actor,
                action="certificate.release",
                target=f"certificate:{ca_name}/{format_serial(row.serial)}",
                details={"id": row.id, "held_since": isoformat_utc(row.revoked_at) if row.revoked_at else None},
            )
            info = dataclasses.replace(
                store.certificate_info(row, ca_name),
                status=ISSUED,
                revoked_at=None,
                revocation_reason=None,
                invalidity_date=None,
            )
        self.ocsp.invalidate(row.ca_id, row.serial)
        return info

    # -- reading ----------------------------------------------------------------------------------------

    def get_certificate(self, reference: str | int) -> CertificateInfo:
        """A certificate by id or serial number; raises CertificateNotFound or AmbiguousSerial."""
        with transaction(self.sessions) as session:
            row = store.certificate_row(session, reference)
            return store.certificate_info(row, self._ca_name(session, row.ca_id))

    def search(self, query: CertificateQuery) -> list[CertificateInfo]:
        """Up to ``query.limit + 1`` certificates matching every filter, ids ascending after ``after_id``.

        Without a status filter, reserved and failed rows (no certificate) are left out.
        """
        conditions = [CertificateRow.id > query.after_id]
        if query.status:
            conditions.append(CertificateRow.status == query.status)
        else:
            conditions.append(CertificateRow.status.in_((ISSUED, REVOKED, HOLD)))
        if query.subject:
            pattern = "%" + query.subject.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(func.lower(CertificateRow.subject).like(pattern, escape="\\"))
        if query.serial is not None:
            conditions.append(CertificateRow.serial == query.serial)
        if query.profile:
            conditions.append(CertificateRow.profile == query.profile)
        if query.owner:
            conditions.append(CertificateRow.owner == query.owner)
        if query.expires_before is not None:
            conditions.append(CertificateRow.not_after < query.expires_before)
        if query.expires_after is not None:
            conditions.append(CertificateRow.not_after >= query.expires_after)
        with transaction(self.sessions) as session:
            if query.ca:
                conditions.append(CertificateRow.ca_id == store.ca_row_by_name(session, query.ca).id)
            rows = session.scalars(
                select(CertificateRow).where(and_(*conditions)).order_by(CertificateRow.id).limit(query.limit + 1)
            ).all()
            return [store.certificate_info(row, self._ca_name(session, row.ca_id)) for row in rows]

    # -- CRL and OCSP -----------------------------------------------------------------------------------

    def publish_crl(self, name: str) -> PublishedCRL:
        """Build and publish the CA's CRL now (``hengxin ca crl``), waiting for another node's run if needed."""
        ca = self.get_ca(name)
        return self.publisher.publish_now(ca.id, self.holder)

    def latest_crl(self, name: str) -> PublishedCRL:
        """The CA's newest CRL; raises UnknownCA or CRLUnavailable."""
        ca = self.get_ca(name)
        return self.publisher.latest(ca.id)

    def publish_due_crls(self, holder: str | None = None) -> list[PublishedCRL]:
        """One publisher cycle: publish every CRL that is due, if this node holds the lease."""
        return self.publisher.run_due(holder or self.holder)

    def ocsp_respond(self, request: bytes) -> OCSPAnswer:
        """Answer a DER OCSP request (never raises)."""
        return self.ocsp.respond(request)

    # -- validation -------------------------------------------------------------------------------------

    def validate(
        self,
        certificate: bytes | str,
        *,
        chain: Sequence[bytes | str] = (),
        purpose: str = "any",
        moment: dt.datetime | None = None,
    ) -> ValidationReport:
        """Validate a certificate against Hengxin's roots with Hengxin's CRLs and live revocation status.

        The path is built and checked by pyhanko-certvalidator (trust roots: our root CAs;
        CRLs: the newest of each CA; nothing fetched); then every certificate of the path that
        we issued is looked up in the database, which knows revocations the CRL does not carry
        yet.

        Raises:
            CertificateInvalid: the certificate or chain cannot be parsed.
            InvalidIssueRequest: unknown purpose.
        """
        if purpose not in PURPOSES:
            raise InvalidIssueRequest(f"unknown purpose {purpose!r}; known: {', '.join(PURPOSES)}",
                                      detail_zh=f"未知用途 {purpose!r}", rule="purpose")
        leaf = load_certificate(certificate)
        extra = [c for item in chain for c in load_certificates(item)]
        moment = moment or self.clock()
        cas = self._all_cas()
        crls = []
        for ca in cas:
            try:
                crls.append(self.publisher.latest(ca.id).der)
            except CRLUnavailable:
                continue
        outcome = validate_path(
            leaf,
            trust_roots=[ca.certificate for ca in cas if ca.is_root and ca.status == CA_ACTIVE],
            intermediates=[ca.certificate for ca in cas if not ca.is_root] + extra,
            crls=crls,
            moment=moment,
            revocation_mode="hard-fail",
            retroactive_revocation_info=True,
        )
        path = outcome.path or (leaf,)
        fingerprints = [fingerprint(c.public_bytes(serialization.Encoding.DER)) for c in path]
        with transaction(self.sessions) as session:
            rows = {
                row.fingerprint_sha256: row
                for row in session.execute(
                    select(
                        CertificateRow.id,
                        CertificateRow.fingerprint_sha256,
                        CertificateRow.status,
                        CertificateRow.revoked_at,
                        CertificateRow.revocation_reason,
                    ).where(CertificateRow.fingerprint_sha256.in_(fingerprints))
                )
            }
        ca_by_fingerprint = {ca.fingerprint_sha256: ca.name for ca in cas}
        entries = tuple(
            PathEntry(
                subject=c.subject.rfc4514_string(),
                serial=format_serial(c.serial_number),
                fingerprint_sha256=fp,
                not_before=c.not_valid_before_utc,
                not_after=c.not_valid_after_utc,
                ca=ca_by_fingerprint.get(fp),
                certificate_id=rows[fp].id if fp in rows else None,
            )
            for c, fp in zip(path, fingerprints, strict=True)
        )
        valid, code, reason = outcome.valid, outcome.code, outcome.reason
        # Revocations the newest CRL does not carry yet: the database is the source of truth.
        for entry, fp in zip(entries, fingerprints, strict=True):
            row = rows.get(fp)
            if row is not None and row.status in (REVOKED, HOLD) and row.revoked_at <= moment and valid:
                valid, code = False, "revoked"
                reason = f"{entry.subject} was revoked at {isoformat_utc(row.revoked_at)} ({row.revocation_reason})"
        leaf_row = rows.get(fingerprints[0])
        if leaf_row is not None:
            status = {ISSUED: "good", REVOKED: "revoked", HOLD: "hold"}.get(leaf_row.status, "unknown")
            if status != "good" and leaf_row.revoked_at is not None and leaf_row.revoked_at > moment:
                status = "good"
            revocation = RevocationReport(
                status, "database", leaf_row.revoked_at if status != "good" else None,
                leaf_row.revocation_reason if status != "good" else None,
            )
        elif outcome.code == "revoked":
            revocation = RevocationReport("revoked", "crl", outcome.revoked_at, outcome.revocation_reason)
        elif outcome.path and any(e.ca for e in entries[1:]):
            revocation = RevocationReport("unknown", "database")
            if valid:
                valid, code, reason = False, "unknown_certificate", "the issuing CA has no record of this certificate"
        else:
            revocation = RevocationReport("not_checked", None)
        purpose_check = check_purpose(leaf, purpose)
        if valid and not purpose_check.satisfied:
            valid, code, reason = False, "key_usage", purpose_check.reason
        not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
        return ValidationReport(
            valid=valid,
            code=code,
            reason=reason,
            validation_time=moment,
            path=entries if outcome.path else (),
            trust_root=entries[-1] if outcome.path else None,
            not_before=not_before,
            not_after=not_after,
            valid_at_time=not_before <= moment <= not_after,
            purpose=purpose_check,
            revocation=revocation,
        )

    # -- maintenance ------------------------------------------------------------------------------------

    def renew_ocsp_responders(self, *, actor: str = "system") -> list[str]:
        """Issue a new responder certificate for every active CA whose responder expires soon (or is missing)."""
        renewed = []
        now = self.clock()
        for ca in self.list_cas():
            if ca.status != CA_ACTIVE:
                continue
            responder = ca.ocsp_certificate
            if responder is not None and responder.not_valid_after_utc - now > self.options.ocsp_responder_renew_before:
                continue
            try:
                self._issue_responder(ca, actor=actor)
                renewed.append(ca.name)
            except HengxinError as e:
                log.error("OCSP responder renewal failed", extra={"ca": ca.name, "code": e.code})
                self.alerts.raise_alert("ca.ocsp_responder_renewal_failed", "critical",
                                        f"the OCSP responder certificate of CA {ca.name} could not be renewed",
                                        ca=ca.name, code=e.code)
        if renewed:
            self.ocsp.load()
        return renewed

    def check_expiry(self) -> list[CertificateInfo]:
        """Raise an alert for every issued certificate that expires within the warning window and was not
        renewed: end-entity certificates, the CAs' own certificates and the OCSP responders alike."""
        now = self.clock()
        horizon = now + self.options.expiry_warning
        successor = aliased(CertificateRow)
        renewed = exists().where(successor.renewal_of == CertificateRow.id, successor.status == ISSUED)
        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(CertificateRow)
                .where(
                    CertificateRow.status == ISSUED,
                    CertificateRow.not_after > now,
                    CertificateRow.not_after <= horizon,
                    ~renewed,
                )
                .order_by(CertificateRow.not_after)
            ).all()
            expiring = [store.certificate_info(row, self._ca_name(session, row.ca_id)) for row in rows]
        for info in expiring:
            days = (info.not_after - now).total_seconds() / 86400
            platform_owned = info.key_mode in ("ca", "ocsp") or (info.owner or "").startswith(("ca:", "platform:"))
            severity: Severity = "critical" if days <= 7 or info.key_mode == "ca" else "warning"
            self.alerts.raise_alert(
                "ca.certificate_expiring",
                severity,
                f"certificate {info.serial_hex} ({info.subject}, profile {info.profile}) of CA {info.ca} "
                f"expires in {days:.1f} days",
                certificate_id=info.id,
                serial=info.serial_hex,
                ca=info.ca,
                profile=info.profile,
                subject=info.subject,
                not_after=isoformat_utc(info.not_after),
                platform=platform_owned,
            )
        return expiring

    def run_maintenance(self, holder: str | None = None) -> dict[str, Any]:
        """Renew OCSP responders and, once a day across all nodes, raise expiry alerts."""
        holder = holder or self.holder
        now = self.clock()
        result: dict[str, Any] = {"renewed": [], "expiring": None}
        with transaction(self.sessions) as session:
            renew = claim_run(session, "ca.ocsp_renewal", holder, now.strftime("%Y-%m-%dT%H:%M"),
                              dt.timedelta(minutes=10), now=now)
        if renew:
            result["renewed"] = self.renew_ocsp_responders()
        else:
            self.ocsp.reload_if_changed()
        with transaction(self.sessions) as session:
            daily = claim_run(session, "ca.expiry_alerts", holder, now.strftime("%Y-%m-%d"),
                              dt.timedelta(minutes=10), now=now)
        if daily:
            result["expiring"] = len(self.check_expiry())
        return result

    def check_ready(self) -> None:
        """Readiness: every active CA's key signs, its responder is loaded and its CRL is current.

        Raises:
            KeyStoreError leaves, CRLStale, CRLUnavailable.
        """
        now = self.clock()
        for ca in self.list_cas():
            if ca.status != CA_ACTIVE:
                continue
            self.keystore.sign(ca.key_id, b"hengxin ca readiness probe")
            latest = self.publisher.latest(ca.id)
            if latest.next_update <= now:
                raise CRLStale(f"the CRL of CA {ca.name} expired at {isoformat_utc(latest.next_update)}",
                               detail_zh=f"CA {ca.name} 的 CRL 已过期", ca=ca.name)

    # -- offline root and key lifecycle -------------------------------------------------------------------

    def export_csr(self, name: str, *, new_key: bool = False, actor: str = "system") -> tuple[str, bytes]:
        """A PEM CSR for CA ``name``'s key, to be signed by an offline root; returns (CA name, PEM).

        With ``new_key`` (a key rollover under an offline root) a successor CA
        ``<name>-<n>`` is prepared with a new key and the same subject, pending until
        its certificate is imported; asking again returns a CSR for the same pending successor.

        Raises UnknownCA; RolloverRefused for a CA without a key here (or not active, with ``new_key``).
        """
        ca = self._current_generation(name) if new_key else self.get_ca(name)
        if ca.status != CA_ACTIVE:
            raise RolloverRefused(f"CA {ca.name!r} is {ca.status}: no key of it is used here", ca=ca.name,
                                  detail_zh=f"CA {ca.name!r} 状态为 {ca.status}")
        if new_key and ca.parent is None:
            raise RolloverRefused(f"CA {ca.name!r} is a root: roll its key over with `hengxin ca rollover`",
                                  ca=ca.name, detail_zh="根 CA 请使用 hengxin ca rollover 更替密钥")
        if not new_key:
            csr = build_ca_csr(ca.certificate.subject, self.keystore.private_key(ca.key_id))
            return ca.name, csr.public_bytes(serialization.Encoding.PEM)
        subject = ca.certificate.subject
        parent_id = self.get_ca(ca.parent).id if ca.parent is not None else None
        with transaction(self.sessions) as session:
            for row in session.scalars(
                select(CertificateAuthorityRow).where(
                    CertificateAuthorityRow.status == CA_PENDING, CertificateAuthorityRow.parent_id == parent_id
                )
            ):
                if row.certificate_der and _pending_csr(row.certificate_der).subject == subject:
                    return row.name, _pending_csr(row.certificate_der).public_bytes(serialization.Encoding.PEM)
            new_name = _successor_name(ca.name, set(session.scalars(select(CertificateAuthorityRow.name)).all()))
        key = self.keystore.generate(f"ca:{new_name}", _key_type_name(ca.certificate.public_key()))
        csr = build_ca_csr(subject, self.keystore.private_key(key.key_id))
        with transaction(self.sessions) as session:
            # Until its certificate comes back from the ceremony, a pending successor keeps its CSR
            # where the certificate will go.
            session.add(CertificateAuthorityRow(
                name=new_name, parent_id=parent_id, key_id=key.key_id,
                certificate_der=csr.public_bytes(serialization.Encoding.DER), status=CA_PENDING,
                created_at=self.clock(), crl_number=0, revocation_version=0,
            ))
            self.audit.append(
                session, actor=actor, action="ca.rollover_requested", target=f"ca:{ca.name}",
                details={"successor": new_name, "new_key_id": key.key_id},
            )
        return new_name, csr.public_bytes(serialization.Encoding.PEM)

    def import_certificate(
        self, name: str, certificate_data: bytes, root_data: bytes, *, actor: str, root_name: str = "offline-root"
    ) -> CAInfo:
        """Install a certificate for CA ``name``'s key signed by a root kept off the network.

        ``root_data`` holds the root (and any intermediates) in PEM.  The certificate
        must certify the CA's key and chain to a self-signed root in ``root_data``;
        that root is recorded as CA ``root_name`` with status ``offline`` (no key here)
        unless a CA with that certificate exists.  The CA's OCSP responder is re-issued
        and its CRL re-published.  For a successor prepared by ``export_csr(new_key=True)``
        this completes the rollover: the successor becomes active and issues from now on.

        Raises:
            UnknownCA; ImportRefused (rule ``key_mismatch``, ``not_a_ca``, ``validity``, ``chain``, ``format``).
        """
        certificates = load_certificates_pem_or_der(certificate_data)
        certificate = certificates[0]
        candidates = [*certificates[1:], *load_certificates_pem_or_der(root_data)]
        predecessor_id: int | None = None
        with transaction(self.sessions) as session:
            target = session.scalars(
                select(CertificateAuthorityRow).where(CertificateAuthorityRow.name == name)
            ).one_or_none()
            if target is None:
                raise UnknownCA(f"no certificate authority is named {name!r}", ca=name,
                                detail_zh=f"证书认证机构 {name!r} 不存在")
            if target.status not in (CA_ACTIVE, CA_PENDING):
                raise ImportRefused(f"CA {name!r} is {target.status}: no key of it is used here", rule="key_mismatch",
                                    ca=name, detail_zh=f"CA {name!r} 状态为 {target.status}")
            ca_id, key_id, pending = target.id, target.key_id, target.status == CA_PENDING
            if pending:
                subject = _pending_csr(target.certificate_der).subject
                for row in session.scalars(
                    select(CertificateAuthorityRow).where(
                        CertificateAuthorityRow.status == CA_ACTIVE,
                        CertificateAuthorityRow.parent_id == target.parent_id,
                        CertificateAuthorityRow.superseded_by.is_(None),
                    )
                ):
                    if x509.load_der_x509_certificate(row.certificate_der).subject == subject:
                        predecessor_id = row.id
        now = self.clock()
        chain = check_imported_certificate(certificate, self.keystore.public_key(key_id), candidates, now)
        if len(chain) != 1:
            raise ImportRefused("only a certificate signed directly by the offline root can be imported",
                                rule="chain", detail_zh="只能导入由离线根直接签发的证书")
        root = chain[0]
        root_der = root.public_bytes(serialization.Encoding.DER)
        der = certificate.public_bytes(serialization.Encoding.DER)
        with transaction(self.sessions) as session:
            root_row = session.scalars(
                select(CertificateAuthorityRow).where(CertificateAuthorityRow.certificate_der == root_der)
            ).one_or_none()
            if root_row is None:
                if session.execute(
                    select(CertificateAuthorityRow.id).where(CertificateAuthorityRow.name == root_name)
                ).first():
                    raise DuplicateCAName(f"a CA named {root_name!r} exists", ca=root_name,
                                          detail_zh=f"名为 {root_name!r} 的 CA 已存在")
                root_row = CertificateAuthorityRow(
                    name=root_name, parent_id=None, key_id="", certificate_der=root_der, status=CA_OFFLINE,
                    created_at=now, crl_number=0, revocation_version=0,
                )
                session.add(root_row)
                session.flush()
                root_certificate = CertificateRow(
                    ca_id=root_row.id, serial=root.serial_number, status=ISSUED, profile="root-ca",
                    subject=root.subject.rfc4514_string(), key_mode="ca", owner=f"ca:{root_name}",
                    not_before=root.not_valid_before_utc, not_after=root.not_valid_after_utc, der=root_der,
                    fingerprint_sha256=fingerprint(root_der), requested_by=actor[:200], created_at=now,
                )
                session.add(root_certificate)
                session.flush()
                root_row.certificate_id = root_certificate.id
            certificate_row = CertificateRow(
                ca_id=root_row.id, serial=certificate.serial_number, status=ISSUED, profile="sub-ca",
                subject=certificate.subject.rfc4514_string(), key_mode="ca", key_id=key_id, owner=f"ca:{name}",
                not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc, der=der,
                fingerprint_sha256=fingerprint(der), requested_by=actor[:200], created_at=now,
            )
            session.add(certificate_row)
            session.flush()
            session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.id == ca_id)
                .values(parent_id=root_row.id, certificate_der=der, certificate_id=certificate_row.id, status=CA_ACTIVE)
                .execution_options(synchronize_session=False)
            )
            if predecessor_id is not None:
                session.execute(
                    update(CertificateAuthorityRow)
                    .where(CertificateAuthorityRow.id == predecessor_id)
                    .values(superseded_by=ca_id)
                    .execution_options(synchronize_session=False)
                )
            self.audit.append(
                session, actor=actor, action="ca.import_certificate", target=f"ca:{name}",
                details={"root": root_row.name, "root_fingerprint_sha256": fingerprint(root_der),
                         "serial": format_serial(certificate.serial_number),
                         "fingerprint_sha256": fingerprint(der), "rollover_of": predecessor_id},
            )
        updated = self._issue_responder(self.get_ca(name), actor=actor, new_key=False)
        self.publisher.publish_now(updated.id, self.holder)
        self.ocsp.load()
        log.info("imported a CA certificate signed offline", extra={"ca": name, "root": root_row.name})
        return updated

    def import_crl(self, crl_data: bytes, *, actor: str) -> PublishedCRL:
        """Store a CRL signed by an offline root; it is then served at ``/crl/<root>.crl``.

        Certificates it lists that we recorded are marked revoked (a revoked sub-CA stops issuing).

        Raises:
            ImportRefused: rule ``format``, ``unknown_issuer`` (no offline CA whose key signed it),
            ``crl_not_newer`` (its number is not above the newest stored one).
        """
        crl = load_crl_pem_or_der(crl_data)
        number = crl_number(crl)
        der = crl.public_bytes(serialization.Encoding.DER)
        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(CertificateAuthorityRow).where(CertificateAuthorityRow.status == CA_OFFLINE)
            ).all()
            issuer = next((r for r in rows if _signed_crl(crl, x509.load_der_x509_certificate(r.certificate_der))),
                          None)
            if issuer is None:
                raise ImportRefused("the CRL is not signed by an offline root known here", rule="unknown_issuer",
                                    detail_zh="CRL 不是由已知的离线根签发")
            newest = session.scalar(select(func.max(CRLRow.crl_number)).where(CRLRow.ca_id == issuer.id))
            if newest is not None and number <= newest:
                raise ImportRefused(f"CRL number {number} is not above the newest stored ({newest})",
                                    rule="crl_not_newer", detail_zh="CRL 编号不比已存储的更新")
            next_update = crl.next_update_utc or (crl.last_update_utc + dt.timedelta(days=365))
            session.add(CRLRow(ca_id=issuer.id, crl_number=number, this_update=crl.last_update_utc,
                               next_update=next_update, entries=len(crl), der=der))
            issuer.crl_number = max(issuer.crl_number, number)
            now = self.clock()
            for entry in crl:
                session.execute(
                    update(CertificateRow)
                    .where(CertificateRow.ca_id == issuer.id, CertificateRow.serial == entry.serial_number,
                           CertificateRow.status == ISSUED)
                    .values(status=REVOKED, revoked_at=entry.revocation_date_utc, revocation_reason="unspecified")
                    .execution_options(synchronize_session=False)
                )
                session.execute(
                    update(CertificateAuthorityRow)
                    .where(CertificateAuthorityRow.parent_id == issuer.id,
                           CertificateAuthorityRow.certificate_id.in_(
                               select(CertificateRow.id).where(CertificateRow.ca_id == issuer.id,
                                                               CertificateRow.serial == entry.serial_number)))
                    .values(status=CA_REVOKED)
                    .execution_options(synchronize_session=False)
                )
            self.audit.append(
                session, actor=actor, action="ca.import_crl", target=f"ca:{issuer.name}",
                details={"crl_number": number, "entries": len(crl), "now": isoformat_utc(now)},
            )
            name = issuer.name
        return self.latest_crl(name)

    def rollover(self, name: str, *, actor: str) -> CAInfo:
        """Give CA ``name`` a new key and certificate; issuance moves to it.

        The successor is a CA named ``<name>-<n>`` with the same subject, a new key
        (new SKI), certified by the same parent (a root rollover makes a new
        self-signed root, plus link certificates old-with-new and new-with-old).  The old CA stays
        active: its CRL and OCSP responder keep answering for what it issued.

        Raises:
            UnknownCA; RolloverRefused (revoked, offline, or already superseded).
        """
        old = self._current_generation(name)
        if old.status != CA_ACTIVE:
            raise RolloverRefused(f"CA {old.name!r} is {old.status}: its key cannot be rolled over", ca=old.name,
                                  detail_zh=f"CA {old.name!r} 状态为 {old.status}，不能更替密钥")
        if old.parent is not None and self.get_ca(old.parent).status == CA_OFFLINE:
            raise RolloverRefused(
                f"CA {old.name!r} is certified by the offline root {old.parent!r}: run `hengxin ca export-csr "
                f"--ca {old.name} --new-key`, have the root sign it, then `hengxin ca import-cert`",
                ca=old.name, detail_zh=f"CA {old.name!r} 由离线根签发：请导出新密钥的 CSR，离线签发后导入",
            )
        with transaction(self.sessions) as session:
            new_name = _successor_name(old.name, set(session.scalars(select(CertificateAuthorityRow.name)).all()))
        subject = store.subject_mapping(old.certificate.subject)
        algorithm = _key_type_name(old.certificate.public_key())
        try:
            constraints_extension = old.certificate.extensions.get_extension_for_class(x509.NameConstraints)
        except x509.ExtensionNotFound:
            constraints_extension = None
        if constraints_extension is not None:
            raise RolloverRefused("rolling over a CA with name constraints is not supported yet", ca=old.name,
                                  detail_zh="暂不支持带名称约束的 CA 密钥更替")
        new = self.create_ca(
            new_name,
            parent=old.parent,
            actor=actor,
            algorithm=algorithm,
            subject=subject,
            path_length=old.path_length if old.parent is not None else None,
        )
        links: list[str] = []
        if old.parent is None:
            links = self._issue_root_links(old, new, actor=actor)
        with transaction(self.sessions) as session:
            session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.id == old.id)
                .values(superseded_by=new.id)
                .execution_options(synchronize_session=False)
            )
            self.audit.append(
                session, actor=actor, action="ca.rollover", target=f"ca:{old.name}",
                details={"successor": new.name, "old_key_id": old.key_id, "new_key_id": new.key_id,
                         "fingerprint_sha256": new.fingerprint_sha256, "links": links},
            )
        log.info("rolled over a CA key", extra={"ca": old.name, "successor": new.name})
        return self.get_ca(new.name)

    def _current_generation(self, name: str) -> CAInfo:
        """CA ``name`` or, after rollovers, its newest successor (whatever its status)."""
        with transaction(self.sessions) as session:
            row = store.ca_row_by_name(session, name)
            for _ in range(100):
                if row.superseded_by is None:
                    break
                successor = session.get(CertificateAuthorityRow, row.superseded_by)
                assert successor is not None
                row = successor
            return store.ca_info(row, store.ca_names(session))

    def link_certificates(self, name: str) -> list[x509.Certificate]:
        """The link certificates recorded for root CA ``name`` (profile ``root-link``)."""
        ca = self.get_ca(name)
        with transaction(self.sessions) as session:
            ders = session.scalars(
                select(CertificateRow.der).where(CertificateRow.owner == f"link:{ca.name}",
                                                 CertificateRow.status == ISSUED)
            ).all()
        return [x509.load_der_x509_certificate(der) for der in ders if der]

    def _issue_root_links(self, old: CAInfo, new: CAInfo, *, actor: str) -> list[str]:
        """Old-with-new (new key, signed by the old key) and new-with-old (old key, signed by the new key)."""
        issued = []
        for signer, subject_ca, owner in ((old, new, f"link:{new.name}"), (new, old, f"link:{old.name}")):
            certificate = subject_ca.certificate
            # A link certificate stands in for a root: the sub-CA profile without its default pathLenConstraint.
            profile = dataclasses.replace(self.profiles.get("sub-ca"), name="root-link", path_length=None)
            not_before = max(self.clock() - dt.timedelta(minutes=1), certificate.not_valid_before_utc)
            not_after = min(signer.not_after, certificate.not_valid_after_utc, not_before + profile.max_validity)
            info = self._sign_and_record(
                issuer_id=signer.id, issuer_name=signer.name, issuer_cert=signer.certificate,
                issuer_key_id=signer.key_id, profile=profile,
                subject_values=profile.check_subject(store.subject_mapping(certificate.subject)),
                public_key=certificate.public_key(), sans=SubjectAltNames(),
                not_before=not_before, not_after=not_after,
                key_mode="ca", key_id=subject_ca.key_id, owner=owner, actor=actor, action="certificate.issue",
                path_length=None,
            )
            issued.append(info.serial_hex)
        return issued

    # -- internals --------------------------------------------------------------------------------------

    def _all_cas(self) -> list[CAInfo]:
        with transaction(self.sessions) as session:
            return store.list_cas(session)

    def _active_ca(self, name: str) -> CAInfo:
        """The CA that issues for ``name``: after a key rollover, its newest successor."""
        return self._issuer(name)[0]

    def _issuer(self, name: str) -> tuple[CAInfo, tuple[bytes, ...]]:
        """The CA that issues for ``name`` and its DER chain (itself first, root last), from one snapshot.

        A pure read: on SQLite it takes no write lock, so issuing requests do not queue for it.
        Raises UnknownCA or CAInactive.
        """
        if self._snapshots is not None:
            try:
                with self._snapshots.connect() as connection, connection.begin():
                    return store.issuing_ca(connection, name)
            except OperationalError as e:
                raise DatabaseUnavailable("the database did not answer") from e
        with read_transaction(self.sessions) as session:
            return store.issuing_ca(session.connection(), name)

    def _ca_name(self, session: Session, ca_id: int) -> str:
        name = self._names.get(ca_id)
        if name is None:
            name = session.execute(
                select(CertificateAuthorityRow.name).where(CertificateAuthorityRow.id == ca_id)
            ).scalar_one()
            self._names[ca_id] = name
        return name

    @staticmethod
    def _mark_dirty(session: Session, ca_id: int, now: dt.datetime) -> None:
        session.connection().execute(_MARK_DIRTY, {"ca_id": ca_id, "dirty_since": now})

    def _check_revocable(self, row: Any, hold: bool) -> None:
        if row.status in (RESERVED, FAILED):
            raise CertificateNotIssued("no certificate was issued under this serial number",
                                       detail_zh="该序列号下没有已签发的证书", status=row.status)
        if row.status == REVOKED:
            raise AlreadyRevoked("the certificate is already revoked", detail_zh="证书已被吊销",
                                 status=row.status)
        if row.status == HOLD and hold:
            raise AlreadyRevoked("the certificate is already on hold", detail_zh="证书已处于冻结状态",
                                 status=row.status)
        if row.profile == "root-ca":
            raise RootNotRevocable("a self-signed root is withdrawn from trust stores, not revoked",
                                   detail_zh="自签名根证书不能被吊销，应从信任库中移除")

    def _renewable(
        self, reference: str | int, *, allow_revoked: bool
    ) -> tuple[CertificateInfo, tuple[CAInfo, tuple[bytes, ...]], Profile]:
        with transaction(self.sessions) as session:
            row = store.certificate_row(session, reference)
            info = store.certificate_info(row, self._ca_name(session, row.ca_id))
        if info.status in (RESERVED, FAILED) or info.der is None:
            raise CertificateNotIssued("no certificate was issued under this serial number",
                                       detail_zh="该序列号下没有已签发的证书", status=info.status)
        if info.status in (REVOKED, HOLD) and not allow_revoked:
            raise AlreadyRevoked("a revoked certificate is not renewed: re-key it instead",
                                 detail_zh="已吊销的证书不能续期，请重新生成密钥", status=info.status)
        profile = self.profiles.get(info.profile)
        if profile.ca or info.key_mode in ("ca", "ocsp"):
            raise InvalidIssueRequest("CA and OCSP responder certificates are renewed by the CA itself",
                                      detail_zh="CA 与 OCSP 响应器证书由系统自行续期", rule="profile")
        return info, self._issuer(info.ca), profile

    def _key_type(self, algorithm: str | None, profile: Profile, *, end_entity: bool = False) -> KeyType:
        if algorithm is None:
            preferred = KeyType(self.options.end_entity_algorithm if end_entity else self.options.algorithm)
            if preferred in profile.key_types:
                return preferred
            return sorted(profile.key_types, key=lambda k: k.value)[0]
        try:
            key_type = KeyType(algorithm.lower())
        except ValueError:
            raise InvalidIssueRequest(
                f"unknown key algorithm {algorithm!r}; choose one of {', '.join(k.value for k in KeyType)}",
                detail_zh=f"未知密钥算法 {algorithm!r}", rule="key_algorithm",
            ) from None
        if key_type not in profile.key_types:
            raise ProfileViolation(f"key type {key_type} is not allowed by profile {profile.name}", rule="key_type",
                                   detail_zh=f"证书模板 {profile.name} 不允许 {key_type} 密钥")
        return key_type

    @staticmethod
    def _check_owner(owner: str | None) -> str:
        if not owner or not _OWNER.fullmatch(owner):
            raise InvalidIssueRequest("a custodial key needs an owner such as 'user:zhangwei'",
                                      detail_zh="托管密钥需要所有者，例如 'user:zhangwei'", rule="owner")
        return owner

    @staticmethod
    def _check_not_issuer_key(public_key: CertificatePublicKeyTypes, ca: CAInfo) -> None:
        if public_key == ca.certificate.public_key():
            raise ProfileViolation("the subject key must differ from the issuer key", rule="key_reuse",
                                   detail_zh="主体密钥不能与签发密钥相同")

    def _validity(
        self, profile: Profile, issuer_not_after: dt.datetime | None, validity_days: int | None
    ) -> tuple[dt.datetime, dt.datetime]:
        now = self.clock().replace(microsecond=0)
        not_before = now - BACKDATE
        if validity_days is not None:
            if isinstance(validity_days, bool) or not isinstance(validity_days, int) or validity_days < 1:
                raise ProfileViolation("validity_days must be a positive number of days", rule="validity",
                                       detail_zh="有效天数必须为正整数")
            not_after = not_before + dt.timedelta(days=validity_days)
        else:
            not_after = not_before + profile.default_validity
        profile.check_validity(not_before, not_after)
        if issuer_not_after is not None and not_after > issuer_not_after:
            if validity_days is not None:
                raise ProfileViolation("the certificate would outlive its issuer", rule="issuer_validity",
                                       detail_zh="证书有效期不能超过签发机构证书")
            not_after = issuer_not_after
        return not_before, not_after

    def _reserve(
        self,
        *,
        issuer_id: int,
        profile: str,
        subject: str,
        not_before: dt.datetime,
        not_after: dt.datetime,
        key_mode: str,
        key_id: str | None,
        owner: str | None,
        actor: str,
        renewal_of: int | None,
    ) -> tuple[int, int, dt.datetime]:
        """Commit a ``reserved`` row with a fresh serial number (in a group with concurrent requests).

        Returns the row's id, the serial number and the row's ``created_at``.  Raises SerialExhausted.
        """
        created_at = self.clock()
        row_id, serial = self._reservations.submit({
            "ca_id": issuer_id,
            "status": RESERVED,
            "profile": profile,
            "subject": subject,
            "key_mode": key_mode,
            "owner": owner,
            "key_id": key_id,
            "not_before": not_before,
            "not_after": not_after,
            "requested_by": actor[:200],
            "created_at": created_at,
            "renewal_of": renewal_of,
        })
        return row_id, serial, created_at

    def _reserve_group(self, group: list[dict[str, Any]]) -> list[tuple[int, int] | BaseException]:
        """Insert the reserved rows of ``group`` with fresh serial numbers in one transaction.

        A serial number already taken (under the same CA) fails the whole insert; the rows are then reserved
        one at a time, each retrying with new numbers, so only a request that keeps colliding fails.
        """
        if len(group) == 1:
            return [self._reserve_one(group[0])]
        rows = [{**values, "serial": new_serial()} for values in group]
        try:
            with transaction(self.sessions) as session:
                ids = session.connection().execute(_RESERVE_MANY, rows).scalars().all()
        except IntegrityError:
            log.warning("serial number collision in a group of reservations; reserving one at a time")
            results: list[tuple[int, int] | BaseException] = []
            for values in group:
                try:
                    results.append(self._reserve_one(values))
                except SerialExhausted as e:
                    results.append(e)
            return results
        return [(int(row_id), row["serial"]) for row_id, row in zip(ids, rows, strict=True)]

    def _reserve_one(self, values: dict[str, Any]) -> tuple[int, int]:
        for _ in range(SERIAL_ATTEMPTS):
            serial = new_serial()
            try:
                with transaction(self.sessions) as session:
                    row_id = session.connection().execute(_RESERVE, {**values, "serial": serial}).scalar_one()
                    return int(row_id), serial
            except IntegrityError:
                log.warning("serial number collision; retrying", extra={"ca_id": values["ca_id"]})
        raise SerialExhausted("could not reserve a free serial number")

    def _discard_pending_ca(self, ca_id: int) -> None:
        """Free the name of a CA whose creation failed before its certificate was stored."""
        try:
            with transaction(self.sessions) as session:
                session.execute(
                    delete(CertificateRow).where(
                        CertificateRow.ca_id == ca_id, CertificateRow.status.in_((RESERVED, FAILED))
                    )
                )
                session.execute(
                    delete(CertificateAuthorityRow).where(
                        CertificateAuthorityRow.id == ca_id, CertificateAuthorityRow.status == CA_PENDING
                    )
                )
        except (HengxinError, IntegrityError):
            log.exception("could not discard a pending CA", extra={"ca_id": ca_id})

    def _mark_failed(self, row_id: int) -> None:
        try:
            with transaction(self.sessions) as session:
                session.execute(
                    update(CertificateRow)
                    .where(CertificateRow.id == row_id, CertificateRow.status == RESERVED)
                    .values(status=FAILED)
                    .execution_options(synchronize_session=False)
                )
        except HengxinError:
            log.exception("could not mark a reserved serial number as failed", extra={"row_id": row_id})

    def _sign_and_record(
        self,
        *,
        issuer_id: int,
        issuer_name: str,
        issuer_cert: x509.Certificate | None,
        issuer_key_id: str,
        profile: Profile,
        subject_values: Mapping[str, Sequence[str]],
        public_key: CertificatePublicKeyTypes,
        sans: SubjectAltNames,
        not_before: dt.datetime,
        not_after: dt.datetime,
        key_mode: str,
        key_id: str | None,
        owner: str | None,
        actor: str,
        action: str,
        renewal_of: int | None = None,
        path_length: int | None = None,
        name_constraints: NameConstraints | None = None,
        on_commit: CommitHook | None = None,
    ) -> CertificateInfo:
        """Reserve a serial number (committed), sign, then commit the certificate with its audit record.

        ``on_commit`` runs in that last transaction; a mapping it returns is merged into the audit details.
        """
        subject_text = build_name(subject_values).rfc4514_string()
        row_id, serial, created_at = self._reserve(
            issuer_id=issuer_id,
            profile=profile.name,
            subject=subject_text,
            not_before=not_before,
            not_after=not_after,
            key_mode=key_mode,
            key_id=key_id,
            owner=owner,
            actor=actor,
            renewal_of=renewal_of,
        )
        try:
            certificate = build_certificate(
                profile,
                issuer_cert=issuer_cert,
                issuer_key=self.keystore.private_key(issuer_key_id),
                subject=subject_values,
                public_key=public_key,
                sans=sans,
                serial=serial,
                not_before=not_before,
                not_after=not_after,
                urls=None if profile.self_signed else PublicationURLs(self.options.base_url, issuer_name),
                path_length=path_length,
                name_constraints=name_constraints,
            )
        except BaseException:
            self._mark_failed(row_id)
            raise
        der = certificate.public_bytes(serialization.Encoding.DER)
        digest = fingerprint(der)
        details: dict[str, Any] = {
            "id": row_id,
            "profile": profile.name,
            "subject": subject_text,
            "key_mode": key_mode,
            "owner": owner,
            "not_after": isoformat_utc(not_after),
            "fingerprint_sha256": digest,
            "renewal_of": renewal_of,
        }
        target = f"certificate:{issuer_name}/{format_serial(serial)}"
        if on_commit is None:
            # The common case: committed in a group with the certificates other requests signed meanwhile
            # (one transaction, one audit head read, one fsync), before this call returns.
            info = CertificateInfo(
                id=row_id, ca=issuer_name, ca_id=issuer_id, serial=serial, status=ISSUED, profile=profile.name,
                subject=subject_text, key_mode=key_mode, owner=owner, key_id=key_id, not_before=not_before,
                not_after=not_after, der=der, fingerprint_sha256=digest, requested_by=actor[:200],
                created_at=created_at, revoked_at=None, revocation_reason=None, invalidity_date=None,
                renewal_of=renewal_of,
            )
            event = AuditEvent(actor=actor, action=action, target=target, details=details)
            return self._issued.submit(_Signed(info, event))
        table = _CERTIFICATES
        with transaction(self.sessions) as session:
            # One UPDATE ... RETURNING instead of loading the row and flushing it.
            row = session.execute(
                update(table)
                .where(table.c.id == row_id)
                .values(der=der, fingerprint_sha256=digest, status=ISSUED)
                .returning(*table.c)
            ).one()
            extra = on_commit(session, row, certificate)
            self.audit.append(session, actor=actor, action=action, target=target, details={**details, **(extra or {})})
            info = store.certificate_info(row, issuer_name)
        return info

    def _commit_signed(self, group: list[_Signed]) -> list[CertificateInfo]:
        """Store the signed certificates of ``group`` (their rows are reserved) with their audit records, in one
        transaction."""
        rows = [{"row_id": s.info.id, "row_der": s.info.der, "row_fingerprint": s.info.fingerprint_sha256}
                for s in group]
        with transaction(self.sessions) as session:
            # One row: a plain execute (an executemany of one costs more).
            result = session.connection().execute(_STORE_SIGNED, rows[0] if len(rows) == 1 else rows)
            if result.rowcount != len(group):
                raise CAError("a reserved certificate row is missing")
            self.audit.append_many(session, [s.event for s in group])
        return [s.info for s in group]

    def _issue_responder(self, ca: CAInfo, *, actor: str, new_key: bool = False) -> CAInfo:
        """Issue (or renew) the CA's delegated OCSP responder certificate and record it on the CA.

        Renewal keeps the responder's key unless ``new_key``.
        """
        profile = self.profiles.get("ocsp-responder")
        key_id = None if new_key else ca.ocsp_key_id
        if key_id is None:
            ca_type = KeyType(_key_type_name(ca.certificate.public_key()))
            key_type = ca_type if ca_type in profile.key_types else self._key_type(None, profile)
            key_id = self.keystore.generate(f"ocsp:{ca.name}", key_type.value).key_id
        public_key = self.keystore.public_key(key_id)
        subject_values = profile.check_subject(
            {"CN": f"{self.options.organisation} OCSP {ca.name}"[:64], "O": self.options.organisation}
        )
        not_before, not_after = self._validity(profile, ca.not_after, None)

        def record(session: Session, row: Any, certificate: x509.Certificate) -> None:
            session.execute(
                update(CertificateAuthorityRow)
                .where(CertificateAuthorityRow.id == ca.id)
                .values(
                    ocsp_key_id=key_id,
                    ocsp_certificate_der=certificate.public_bytes(serialization.Encoding.DER),
                    ocsp_certificate_id=row.id,
                )
                .execution_options(synchronize_session=False)
            )

        self._sign_and_record(
            issuer_id=ca.id,
            issuer_name=ca.name,
            issuer_cert=ca.certificate,
            issuer_key_id=ca.key_id,
            profile=profile,
            subject_values=subject_values,
            public_key=public_key,
            sans=SubjectAltNames(),
            not_before=not_before,
            not_after=not_after,
            key_mode="ocsp",
            key_id=key_id,
            owner=f"ca:{ca.name}",
            actor=actor,
            action="certificate.renew" if ca.ocsp_certificate_id else "certificate.issue",
            renewal_of=ca.ocsp_certificate_id,
            on_commit=record,
        )
        return self.get_ca(ca.name)

    def _result(
        self,
        certificate: CertificateInfo,
        chain: tuple[bytes, ...],
        private_key: Any = None,
        password: str | None = None,
    ) -> IssueResult:
        pkcs12 = None
        if private_key is not None:
            assert certificate.certificate is not None and password is not None
            pkcs12 = export_pkcs12(
                private_key,
                certificate.certificate,
                [x509.load_der_x509_certificate(der) for der in chain],
                password,
                friendly_name=certificate.subject,
            )
        return IssueResult(certificate, chain, pkcs12)


def _successor_name(name: str, taken: set[str]) -> str:
    """``issuing`` -> ``issuing-2`` (or the next free number); ``issuing-2`` -> ``issuing-3``."""
    base = re.sub(r"-\d+$", "", name)
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _signed_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` (by name and key) signed ``crl``."""
    public_key: Any = issuer.public_key()
    return crl.issuer == issuer.subject and crl.is_signature_valid(public_key)


def _pending_csr(der: bytes) -> x509.CertificateSigningRequest:
    return x509.load_der_x509_csr(der)


def normalise_reason(reason: str) -> str:
    """The RFC 5280 name of a revocation reason (``keyCompromise``; ``key_compromise`` is accepted too).

    Raises:
        RevocationInvalid: unknown reason, or removeFromCRL (delta CRLs only).
    """
    text = (reason or "unspecified").strip().lower()
    found = _REASONS.get(text)
    if found is None:
        raise RevocationInvalid(
            f"unknown revocation reason {reason!r}; use one of {', '.join(REVOCATION_REASONS)}",
            detail_zh=f"未知吊销原因 {reason!r}", reasons=list(REVOCATION_REASONS),
        )
    return found


# Reason names by lower-case spelling, RFC 5280 (keycompromise) and snake case (key_compromise).
_REASONS: dict[str, str] = {
    **{re.sub(r"(?<!^)(?=[A-Z])", "_", r).lower(): r for r in REVOCATION_REASONS},
    "ca_compromise": "cACompromise",
    "aa_compromise": "aACompromise",
    **{r.lower(): r for r in REVOCATION_REASONS},
}


def _speaks_for_the_ca(profile: Profile) -> bool:
    """Whether a certificate of ``profile`` could sign OCSP responses on behalf of its issuer."""
    return profile.ocsp_no_check or ExtendedKeyUsageOID.OCSP_SIGNING in profile.extended_key_usage


def _key_type_name(public_key: CertificatePublicKeyTypes) -> str:
    from ca.profiles import key_type_of

    return key_type_of(public_key).value
