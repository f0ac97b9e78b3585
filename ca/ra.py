"""The registration authority: certificate requests, their approval, and the binding of certificates to people.

A request names a profile, the user it is for (``user:<login>``), a reason and
either a CSR or the custodial-key choice.  It goes ``pending`` → ``approved`` →
``issued``, or ``pending`` → ``rejected`` / ``cancelled``.  Each profile has an
approval rule (``[ra] approval``): ``auto`` (issued at submission, for an
active user), ``one`` approver, or ``two`` different approvers (four eyes).
Nobody approves a request they made or a request for themselves
(``ra.self_approval``), and nobody approves one request twice
(``ra.duplicate_approver``, also a database constraint).

For person profiles the subject is taken from the directory entry (CN = the
display name, O/OU = the department path, the e-mail SAN = the entry's e-mail),
never from the CSR's free text.  The directory is reached through a callable
(:data:`DirectoryLookup`) wired in by ``api/components/ra.py``: this package
imports nothing from ``directory``.

Issuance goes through :meth:`ca.service.CAService.issue`.  The request row turns
``issued`` in the same transaction as the certificate, and the certificate's
``certificate.issue`` audit record names the request and its approvers: both
come from the ``on_commit`` hook of :meth:`ca.service.CAService.issue`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from ca.certificates import parse_csr
from ca.errors import CAError
from ca.profiles import Profile, SubjectAltNames
from ca.service import CAService, CertificateQuery, IssueRequest
from core.alerts import AlertChannel
from core.audit import AuditLog
from core.clock import Clock
from core.config import RASettings
from core.errors import Category, HengxinError
from core.store import Base, UTCDateTime, transaction

log = logging.getLogger("hengxin.ra")

PENDING, APPROVED, ISSUED, REJECTED, CANCELLED = "pending", "approved", "issued", "rejected", "cancelled"
STATUSES = (PENDING, APPROVED, ISSUED, REJECTED, CANCELLED)
RULES = {"auto": 0, "one": 1, "two": 2}
KEY_MODES = ("csr", "custodial")


# -- errors ----------------------------------------------------------------------------------------


class RAError(CAError):
    code = "ra.error"
    category = Category.INTERNAL
    title_en = "Registration authority error"
    title_zh = "注册机构错误"


class RequestNotFound(RAError):
    code = "ra.request_not_found"
    category = Category.NOT_FOUND
    title_en = "Certificate request not found"
    title_zh = "证书申请不存在"


class UnknownUser(RAError):
    code = "ra.unknown_user"
    category = Category.NOT_FOUND
    title_en = "No such user in the directory"
    title_zh = "目录中没有该用户"


class UserInactive(RAError):
    code = "ra.user_inactive"
    category = Category.CONFLICT
    title_en = "The user is not active"
    title_zh = "用户未处于启用状态"


class InvalidRequest(RAError):
    """Contradictory or incomplete request; ``rule`` says which."""

    code = "ra.invalid_request"
    category = Category.INVALID
    title_en = "Invalid certificate request"
    title_zh = "证书申请无效"


class ProfileNotRequestable(RAError):
    code = "ra.profile_not_requestable"
    category = Category.INVALID
    title_en = "Certificates of this profile cannot be requested through the RA"
    title_zh = "该证书模板不能通过注册机构申请"


class SubjectMismatch(RAError):
    code = "ra.subject_mismatch"
    category = Category.INVALID
    title_en = "The CSR's subject disagrees with the directory entry"
    title_zh = "证书签名请求的主体与目录条目不一致"


class InvalidState(RAError):
    code = "ra.invalid_state"
    category = Category.CONFLICT
    title_en = "The request is not in a state that allows this"
    title_zh = "证书申请的状态不允许该操作"


class SelfApproval(RAError):
    code = "ra.self_approval"
    category = Category.CONFLICT
    title_en = "Nobody may approve their own request or a request for themselves"
    title_zh = "不能审批自己提交或为自己申请的证书"


class DuplicateApprover(RAError):
    code = "ra.duplicate_approver"
    category = Category.CONFLICT
    title_en = "This approver has already approved the request"
    title_zh = "该审批人已审批过此申请"


class NotAllowed(RAError):
    """The caller may not act on this request (someone else's, without the permission)."""

    code = "ra.not_allowed"
    category = Category.FORBIDDEN
    title_en = "Not allowed to act on this request"
    title_zh = "无权操作该证书申请"


# -- values ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DirectoryEntry:
    """What the RA needs to know about a user, as the directory has it."""

    login: str
    display_name: str
    email: str | None
    department_path: tuple[str, ...]
    active: bool


DirectoryLookup = Callable[[str], DirectoryEntry | None]


@dataclasses.dataclass(frozen=True)
class Approval:
    approver: str
    approved_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class CertificateRequest:
    id: int
    status: str
    profile: str
    ca: str | None
    subject_login: str
    subject: Mapping[str, tuple[str, ...]]
    sans: Mapping[str, tuple[str, ...]]
    key_mode: str
    reason: str
    rule: str
    approvals_required: int
    approvals: tuple[Approval, ...]
    requested_by: str
    created_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    certificate_id: int | None
    issued_at: dt.datetime | None
    validity_days: int | None = None

    @property
    def owner(self) -> str:
        return f"user:{self.subject_login}"


@dataclasses.dataclass(frozen=True)
class Submission:
    """What a requester sends; ``csr`` (PEM or DER) for key_mode csr, nothing for custodial."""

    profile: str
    subject_login: str
    reason: str
    key_mode: str = "csr"
    csr: bytes | None = dataclasses.field(default=None, repr=False)
    subject: Mapping[str, str | Sequence[str]] | None = None
    sans: SubjectAltNames | None = None
    ca: str | None = None
    validity_days: int | None = None


@dataclasses.dataclass(frozen=True)
class RequestQuery:
    status: str | None = None
    profile: str | None = None
    subject_login: str | None = None
    involving: str | None = None  # only requests made by or for this actor/login
    after_id: int = 0
    limit: int = 50


# -- rows ------------------------------------------------------------------------------------------


class CertificateRequestRow(Base):
    __tablename__ = "ca_ra_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    profile: Mapped[str] = mapped_column(String(100), index=True)
    ca: Mapped[str | None] = mapped_column(String(100), nullable=True)
    subject_login: Mapped[str] = mapped_column(String(100), index=True)
    subject_json: Mapped[str] = mapped_column(Text)
    sans_json: Mapped[str] = mapped_column(Text)
    key_mode: Mapped[str] = mapped_column(String(20))
    csr_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    validity_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(10))
    approvals_required: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    certificate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CertificateRequestApprovalRow(Base):
    __tablename__ = "ca_ra_approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_ca_ra_approvals_approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(Integer, ForeignKey("ca_ra_requests.id"), index=True)
    approver: Mapped[str] = mapped_column(String(200))
    approved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# -- the service -----------------------------------------------------------------------------------


def _login_of(actor: str) -> str | None:
    kind, _, name = actor.partition(":")
    return name if kind in ("user", "service") and name else None


class RegistrationAuthority:
    """Certificate requests and approvals on top of :class:`CAService`.  Thread-safe."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        ca: CAService,
        audit: AuditLog,
        alerts: AlertChannel,
        clock: Clock,
        settings: RASettings,
        lookup: DirectoryLookup,
    ) -> None:
        self.sessions = sessions
        self.ca = ca
        self.audit = audit
        self.alerts = alerts
        self.clock = clock
        self.settings = settings
        self.lookup = lookup

    # -- rules ----------------------------------------------------------------------------------

    def rule_for(self, profile: str) -> str:
        return self.settings.approval.get(profile, self.settings.default_approval)

    def _entry(self, login: str) -> DirectoryEntry:
        entry = self.lookup(login.strip().lower())
        if entry is None:
            raise UnknownUser(f"no user {login!r} in the directory", detail_zh=f"目录中没有用户 {login!r}")
        return entry

    def _profile(self, name: str) -> Profile:
        profile = self.ca.profiles.get(name)  # UnknownProfile
        if profile.ca or profile.self_signed or "ocsp-responder" == profile.name:
            raise ProfileNotRequestable(
                f"profile {name} is issued by CA managers (hengxin ca ...), not through requests",
                detail_zh=f"证书模板 {name} 由 CA 管理员签发，不能通过申请签发", profile=name)
        return profile

    def directory_subject(self, entry: DirectoryEntry, profile: Profile) -> tuple[dict[str, Any], SubjectAltNames]:
        """The subject and SANs of a person certificate, from the directory entry (attributes the profile allows)."""
        allowed = set(profile.subject_required) | set(profile.subject_allowed)
        subject: dict[str, Any] = {"CN": entry.display_name}
        if entry.department_path and "O" in allowed:
            subject["O"] = entry.department_path[0]
            if len(entry.department_path) > 1 and "OU" in allowed:
                subject["OU"] = list(entry.department_path[1:])
        sans = SubjectAltNames(email=(entry.email,) if entry.email and "email" in profile.san_allowed else ())
        return subject, sans

    # -- submission -----------------------------------------------------------------------------

    def submit(self, submission: Submission, *, actor: str) -> CertificateRequest:
        """Check and record a request; with an ``auto`` rule it is issued at once.

        Raises (nothing written): UnknownProfile, ProfileNotRequestable, UnknownUser, UserInactive,
        InvalidRequest, CSRInvalid, CSRSignatureInvalid, UnsupportedKey, ProfileViolation, SubjectMismatch.
        """
        profile = self._profile(submission.profile)
        entry = self._entry(submission.subject_login)
        if not entry.active:
            raise UserInactive(f"user {entry.login!r} is not active", detail_zh=f"用户 {entry.login!r} 未启用")
        reason = submission.reason.strip()
        if not reason:
            raise InvalidRequest("a reason is required", detail_zh="需要填写申请理由", rule="reason_required")
        if submission.key_mode not in KEY_MODES:
            raise InvalidRequest("key_mode must be csr or custodial", detail_zh="密钥模式必须为 csr 或 custodial",
                                 rule="key_mode")
        csr_der: bytes | None = None
        csr_subject: Mapping[str, tuple[str, ...]] = {}
        csr_sans = SubjectAltNames()
        if submission.key_mode == "csr":
            if submission.csr is None:
                raise InvalidRequest("a CSR is required", detail_zh="需要提供证书签名请求", rule="csr_required")
            csr = parse_csr(submission.csr)
            profile.check_key(csr.public_key)
            csr_der, csr_subject, csr_sans = csr.der, csr.subject_attributes, csr.sans
        elif submission.csr is not None:
            raise InvalidRequest("no CSR with a custodial key", detail_zh="托管密钥模式不接受证书签名请求",
                                 rule="csr_not_allowed")
        if profile.name in self.settings.person_profiles:
            subject, sans = self.directory_subject(entry, profile)
            if self.settings.subject_source == "refuse_mismatch":
                given = dict(csr_subject)
                extra = submission.subject or {}
                given.update({k: (v,) if isinstance(v, str) else tuple(v) for k, v in extra.items()})
                _check_agrees(given, csr_sans if submission.sans is None else submission.sans, subject, sans)
        else:
            subject = dict(submission.subject) if submission.subject is not None else dict(csr_subject)
            sans = submission.sans if submission.sans is not None else csr_sans
            if not subject:
                raise InvalidRequest("a subject is required", detail_zh="需要提供主体", rule="subject_required")
        subject_values = profile.check_subject(subject)
        profile.check_sans(sans, subject_values)
        rule = self.rule_for(profile.name)
        now = self.clock()
        with transaction(self.sessions) as session:
            row = CertificateRequestRow(
                status=PENDING, profile=profile.name, ca=submission.ca, subject_login=entry.login,
                subject_json=json.dumps(subject_values, ensure_ascii=False), sans_json=json.dumps(_sans_json(sans)),
                key_mode=submission.key_mode, csr_der=csr_der, validity_days=submission.validity_days,
                reason=reason, rule=rule, approvals_required=RULES[rule], requested_by=actor,
                created_at=now, updated_at=now,
            )
            session.add(row)
            session.flush()
            self.audit.append(session, actor=actor, action="certificate_request.submit",
                              target=f"certificate_request:{row.id}",
                              details={"id": row.id, "profile": profile.name, "for": f"user:{entry.login}",
                                       "reason": reason, "rule": rule, "key_mode": submission.key_mode,
                                       "subject": subject_values_text(subject_values)})
            request = self._value(session, row)
        if rule == "auto":
            return self._issue(request, actor=actor, approvers=())
        self._alert("ra.request_waiting", request, f"certificate request {request.id} ({request.profile} for "
                    f"{request.subject_login}) waits for {request.approvals_required} approval(s)")
        return request

    # -- decisions ------------------------------------------------------------------------------

    def approve(self, request_id: int, *, actor: str) -> CertificateRequest:
        """Record an approval; when the rule is met, issue.

        Raises: RequestNotFound, InvalidState (not pending), SelfApproval, DuplicateApprover, and the
        CA's errors at issuance (the request then stays ``approved``).
        """
        now = self.clock()
        with transaction(self.sessions) as session:
            row = self._row(session, request_id, for_update=True)
            if row.status != PENDING:
                raise _not_pending(row)
            login = _login_of(actor)
            if actor == row.requested_by or (login is not None and login == row.subject_login):
                raise SelfApproval("you made this request or it is for you: another officer must approve it",
                                   detail_zh="该申请由您提交或为您申请，须由其他审批人审批")
            approvers = [a.approver for a in self._approvals(session, row.id)]
            if actor in approvers:
                raise DuplicateApprover("you have already approved this request: a different approver is needed",
                                        detail_zh="您已审批过该申请，需要另一位审批人")
            session.add(CertificateRequestApprovalRow(request_id=row.id, approver=actor, approved_at=now))
            try:
                session.flush()
            except IntegrityError:  # the same approver in a concurrent transaction
                raise DuplicateApprover("you have already approved this request",
                                        detail_zh="您已审批过该申请") from None
            approvers.append(actor)
            done = len(approvers) >= row.approvals_required
            if done:
                row.status, row.decided_by, row.decided_at = APPROVED, actor, now
            row.updated_at = now
            self.audit.append(session, actor=actor, action="certificate_request.approve",
                              target=f"certificate_request:{row.id}",
                              details={"id": row.id, "approvals": len(approvers),
                                       "required": row.approvals_required, "approvers": approvers})
            request = self._value(session, row)
        if not done:
            self._alert("ra.request_waiting", request, f"certificate request {request.id} has "
                        f"{len(approvers)} of {request.approvals_required} approvals")
            return request
        self._alert("ra.request_approved", request, f"certificate request {request.id} approved")
        return self._issue(request, actor=actor, approvers=tuple(approvers))

    def reject(self, request_id: int, *, actor: str, reason: str) -> CertificateRequest:
        """Refuse a pending request (``reason`` required).  Raises RequestNotFound, InvalidState, InvalidRequest."""
        return self._close(request_id, actor=actor, reason=reason, status=REJECTED, action="certificate_request.reject")

    def cancel(self, request_id: int, *, actor: str, reason: str = "") -> CertificateRequest:
        """Withdraw a pending request.  Raises RequestNotFound, InvalidState."""
        return self._close(request_id, actor=actor, reason=reason, status=CANCELLED,
                           action="certificate_request.cancel")

    def _close(self, request_id: int, *, actor: str, reason: str, status: str, action: str) -> CertificateRequest:
        reason = reason.strip()
        if status == REJECTED and not reason:
            raise InvalidRequest("a reason is required to reject", detail_zh="驳回需要填写理由", rule="reason_required")
        now = self.clock()
        with transaction(self.sessions) as session:
            row = self._row(session, request_id, for_update=True)
            if row.status != PENDING:
                raise _not_pending(row)
            row.status, row.decided_by, row.decided_at, row.decision_reason = status, actor, now, reason or None
            row.updated_at = now
            self.audit.append(session, actor=actor, action=action, target=f"certificate_request:{row.id}",
                              details={"id": row.id, "reason": reason or None})
            request = self._value(session, row)
        if status == REJECTED:
            self._alert("ra.request_rejected", request, f"certificate request {request.id} rejected: {reason}")
        return request

    def _issue(self, request: CertificateRequest, *, actor: str, approvers: tuple[str, ...]) -> CertificateRequest:
        issue = IssueRequest(
            profile=request.profile, ca=request.ca, key_mode=request.key_mode,
            csr=self._csr(request.id), subject={k: list(v) for k, v in request.subject.items()},
            sans=_sans_from_json(request.sans), owner=request.owner, validity_days=request.validity_days,
        )

        def on_issued(session: Session, details: dict[str, Any]) -> dict[str, Any]:
            # Inside the CA's commit of the certificate: the request turns issued with it.
            now = self.clock()
            row = self._row(session, request.id, for_update=True)
            if row.status not in (PENDING, APPROVED):
                raise InvalidState(f"request {row.id} is {row.status}", status=row.status)
            row.status, row.certificate_id, row.issued_at, row.updated_at = ISSUED, details["id"], now, now
            if row.decided_at is None:
                row.decided_by, row.decided_at = actor, now
            extra = {"request_id": request.id, "requested_by": request.requested_by,
                     "approval_rule": request.rule, "approvers": list(approvers)}
            self.audit.append(session, actor=actor, action="certificate_request.issue",
                              target=f"certificate_request:{request.id}",
                              details={"id": request.id, "certificate_id": details["id"], **extra})
            return extra

        result = self.ca.issue(
            issue, actor=actor, on_commit=lambda session, row, _certificate: on_issued(session, {"id": row.id})
        )
        issued = self.get(request.id)
        self._alert("ra.certificate_issued", issued, f"certificate {result.certificate.serial_hex} issued for "
                    f"request {issued.id}", certificate_id=result.certificate.id)
        return issued

    # -- reading --------------------------------------------------------------------------------

    def get(self, request_id: int) -> CertificateRequest:
        with transaction(self.sessions) as session:
            return self._value(session, self._row(session, request_id))

    def search(self, query: RequestQuery) -> list[CertificateRequest]:
        """Up to ``limit + 1`` requests, ids ascending after ``after_id``."""
        conditions = [CertificateRequestRow.id > query.after_id]
        if query.status:
            conditions.append(CertificateRequestRow.status == query.status)
        if query.profile:
            conditions.append(CertificateRequestRow.profile == query.profile)
        if query.subject_login:
            conditions.append(CertificateRequestRow.subject_login == query.subject_login.strip().lower())
        if query.involving:
            login = _login_of(query.involving)
            mine = CertificateRequestRow.requested_by == query.involving
            conditions.append(mine | (CertificateRequestRow.subject_login == login) if login else mine)
        with transaction(self.sessions) as session:
            rows = session.scalars(select(CertificateRequestRow).where(and_(*conditions))
                                   .order_by(CertificateRequestRow.id).limit(query.limit + 1)).all()
            return [self._value(session, row) for row in rows]

    # -- the directory's status changes ---------------------------------------------------------

    def on_user_status(self, login: str, status: str, *, actor: str) -> list[int]:
        """A disabled user's issued (or held) certificates are revoked and pending requests cancelled.

        Returns the ids of the revoked certificates.  A certificate that cannot be revoked raises a
        critical alert ``ra.revocation_failed`` and the others are still revoked.
        """
        if status != "disabled":
            return []
        revoked: list[int] = []
        if self.settings.revoke_on_disable:
            reason = self.settings.revoke_reason_on_disable
            for state in ("issued", "hold"):
                after = 0
                while True:
                    page = self.ca.search(CertificateQuery(owner=f"user:{login}", status=state, after_id=after,
                                                           limit=200))
                    for info in page[:200]:
                        try:
                            self.ca.revoke(info.id, actor=actor, reason=reason)
                            revoked.append(info.id)
                        except HengxinError as e:
                            log.warning("revoking certificate %s of disabled user failed", info.id,
                                        extra={"code": e.code})
                            self.alerts.raise_alert("ra.revocation_failed", "critical",
                                                    f"certificate {info.id} of disabled user {login} was not revoked",
                                                    certificate_id=info.id, login=login, code=e.code)
                    if len(page) <= 200:
                        break
                    after = page[199].id
        for request in self.search(RequestQuery(status=PENDING, subject_login=login, limit=500))[:500]:
            with contextlib.suppress(InvalidState):
                self.cancel(request.id, actor=actor, reason="the user was disabled")
        return revoked

    # -- helpers --------------------------------------------------------------------------------

    def _alert(self, name: str, request: CertificateRequest, message: str, **details: Any) -> None:
        self.alerts.raise_alert(name, "info", message, request_id=request.id, profile=request.profile,
                                subject=request.owner, status=request.status, **details)

    def _csr(self, request_id: int) -> bytes | None:
        with transaction(self.sessions) as session:
            return self._row(session, request_id).csr_der

    @staticmethod
    def _row(session: Session, request_id: int, *, for_update: bool = False) -> CertificateRequestRow:
        statement = select(CertificateRequestRow).where(CertificateRequestRow.id == request_id)
        if for_update:
            statement = statement.with_for_update()
        row = session.scalars(statement).first()
        if row is None:
            raise RequestNotFound(f"no certificate request {request_id}", detail_zh=f"证书申请 {request_id} 不存在")
        return row

    @staticmethod
    def _approvals(session: Session, request_id: int) -> list[Approval]:
        rows = session.scalars(select(CertificateRequestApprovalRow)
                               .where(CertificateRequestApprovalRow.request_id == request_id)
                               .order_by(CertificateRequestApprovalRow.id)).all()
        return [Approval(r.approver, r.approved_at) for r in rows]

    def _value(self, session: Session, row: CertificateRequestRow) -> CertificateRequest:
        return CertificateRequest(
            id=row.id, status=row.status, profile=row.profile, ca=row.ca, subject_login=row.subject_login,
            subject={k: tuple(v) for k, v in json.loads(row.subject_json).items()},
            sans={k: tuple(v) for k, v in json.loads(row.sans_json).items()},
            key_mode=row.key_mode, reason=row.reason, rule=row.rule, approvals_required=row.approvals_required,
            approvals=tuple(self._approvals(session, row.id)), requested_by=row.requested_by,
            created_at=row.created_at, decided_by=row.decided_by, decided_at=row.decided_at,
            decision_reason=row.decision_reason, certificate_id=row.certificate_id, issued_at=row.issued_at,
            validity_days=row.validity_days,
        )


def _not_pending(row: CertificateRequestRow) -> InvalidState:
    return InvalidState(f"request {row.id} is {row.status}", detail_zh=f"证书申请 {row.id} 的状态为 {row.status}",
                        status=row.status)


def subject_values_text(subject: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {k: list(v) for k, v in subject.items()}


def _sans_json(sans: SubjectAltNames) -> dict[str, list[str]]:
    return {"dns": list(sans.dns), "ip": [str(a) for a in sans.ip], "email": list(sans.email), "uri": list(sans.uri)}


def _sans_from_json(sans: Mapping[str, Sequence[str]]) -> SubjectAltNames:
    ip: Any = tuple(sans.get("ip", ()))
    return SubjectAltNames(dns=tuple(sans.get("dns", ())), ip=ip, email=tuple(sans.get("email", ())),
                           uri=tuple(sans.get("uri", ())))


def _check_agrees(given: Mapping[str, Sequence[str]], given_sans: SubjectAltNames,
                  subject: Mapping[str, Any], sans: SubjectAltNames) -> None:
    """Every attribute and e-mail name the requester supplied must be the directory's (``refuse_mismatch``)."""
    expected = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in subject.items()}
    if sans.email:
        expected["emailAddress"] = sans.email
    for name, values in given.items():
        if tuple(values) != expected.get(name, ()):
            raise SubjectMismatch(f"subject attribute {name} of the CSR disagrees with the directory entry",
                                  detail_zh=f"证书签名请求的主体属性 {name} 与目录条目不一致", attribute=name)
    if given_sans.dns or given_sans.ip or given_sans.uri or not set(given_sans.email) <= set(sans.email):
        raise SubjectMismatch("the CSR's subjectAltNames disagree with the directory entry",
                              detail_zh="证书签名请求的主体备用名称与目录条目不一致", attribute="subjectAltName")

