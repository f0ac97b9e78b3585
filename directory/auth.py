"""Authentication beyond the password: sessions, tokens, second factors, certificate login, duties.

:class:`AuthService` builds on :class:`directory.service.DirectoryService`
(which checks passwords, counts failures and locks accounts) and adds:

- **sessions** with an idle and an absolute timeout; each login starts one,
  and its refresh tokens form one family;
- **refresh tokens**: random, stored as SHA-256, rotated on every use; using
  a rotated one again (a stolen copy) revokes the whole session;
- **access tokens**: short-lived ES256 JWTs (:mod:`directory.tokens`) that
  carry ``sid``, ``auth_time`` and ``amr`` (RFC 8176: ``pwd``, ``otp``,
  ``x509``) so routes can demand a recent strong authentication;
- **TOTP** second factor (:mod:`directory.totp`): the secret is stored
  encrypted (AES-256-GCM under a key from the secret store) and returned
  only once, in the enrolment URI; a code is accepted once;
- **client credentials** for service accounts: a random 256-bit secret
  stored as HMAC-SHA256 under a server key (fast to check on every call);
- **certificate login** through a :class:`CertificateChecker` that ``api/``
  wires to the CA service (this package does not import ``ca``);
- **separation of duties**: :meth:`AuthService.check_role_grant` is the
  directory's grant hook refusing a second administrator role.

Every login, token issue, refresh and revocation appends an audit record;
failures say why in the record only (clients get the same error).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ForeignKey, Integer, String, Table, Text, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from core.alerts import AlertChannel
from core.audit import AuditEvent, AuditLog
from core.clock import Clock, utc_now
from core.config import AuthSettings
from core.errors import Category, HengxinError
from core.store import Base, UTCDateTime, read_transaction, sqlite_reader, transaction
from directory import totp
from directory.models import RoleAssignmentRow, RoleRow, UserRow
from directory.service import ASSIGNMENTS, DirectoryService
from directory.service_errors import DuplicateRole, InvalidCredentials
from directory.tokens import (
    CLIENT_SECRET_PREFIX,
    REFRESH_PREFIX,
    InvalidAccessToken,
    JWTKeys,
    keyed_hash,
    random_token,
    sha256_hex,
)
from directory.values import Account, RoleAssignment

log = logging.getLogger("hengxin.auth")

# 系统管理员, 安全管理员, 审计管理员: level-3 separation of duties, no person holds two of them.
EXCLUSIVE_ROLES = frozenset({"system-administrator", "security-administrator", "audit-administrator"})
STRONG_METHODS = frozenset({"otp", "x509", "mfa"})


# -- errors ------------------------------------------------------------------------------------------


class AuthError(HengxinError):
    code = "auth.error"
    category = Category.UNAUTHENTICATED
    title_en = "Authentication error"
    title_zh = "认证错误"


class SecondFactorRequired(AuthError):
    """The password was right and the account has a second factor: send the code too."""

    code = "auth.second_factor_required"
    title_en = "A second factor is required"
    title_zh = "需要第二认证因素"


class InvalidGrant(AuthError):
    """OAuth ``invalid_grant``: the refresh token is unknown, used, revoked or its session ended."""

    code = "auth.invalid_grant"
    category = Category.INVALID
    title_en = "The grant is not valid"
    title_zh = "授权无效"


class InvalidClient(AuthError):
    code = "auth.invalid_client"
    title_en = "Client authentication failed"
    title_zh = "客户端认证失败"


class UnsupportedGrantType(AuthError):
    code = "auth.unsupported_grant_type"
    category = Category.INVALID
    title_en = "Unsupported grant type"
    title_zh = "不支持的授权类型"


class SeparationOfDuties(AuthError):
    code = "auth.separation_of_duties"
    category = Category.CONFLICT
    title_en = "The assignment breaks the separation of duties"
    title_zh = "违反三员分立原则"


class TOTPStateError(AuthError):
    code = "auth.totp_state"
    category = Category.CONFLICT
    title_en = "The second factor is not in the required state"
    title_zh = "第二认证因素状态不符"


class InvalidTOTPCode(AuthError):
    code = "auth.invalid_totp_code"
    category = Category.INVALID
    title_en = "The one-time code is wrong"
    title_zh = "一次性验证码错误"


class NotAServiceAccount(AuthError):
    code = "auth.not_a_service_account"
    category = Category.CONFLICT
    title_en = "Client secrets are for service accounts"
    title_zh = "客户端密钥仅用于服务账户"


class CertificateRefused(Exception):
    """Raised by a :class:`CertificateChecker`; the reason goes to the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CertificateChecker(Protocol):
    def __call__(self, certificate_der: bytes) -> str:
        """The login the certificate is bound to, if it was issued by our CA and is valid and not revoked
        now; raises :class:`CertificateRefused` otherwise."""
        ...


# -- tables --------------------------------------------------------------------------------------------


class TOTPRow(Base):
    __tablename__ = "directory_auth_totp"

    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), primary_key=True)
    secret_sealed: Mapped[str] = mapped_column(Text, nullable=False)  # base64(nonce || AES-GCM ciphertext)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the last time step accepted
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)


class SessionRow(Base):
    """A login (or a client-credentials grant): the family of its refresh tokens and access tokens."""

    __tablename__ = "directory_auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), nullable=False, index=True)
    login: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # login | client
    amr: Mapped[str] = mapped_column(String(100), nullable=False)  # space separated
    auth_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)  # the absolute limit
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    source: Mapped[str] = mapped_column(String(100), nullable=False, default="")


class RefreshTokenRow(Base):
    __tablename__ = "directory_auth_refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("directory_auth_sessions.id"), nullable=False, index=True)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # rotated


class ClientSecretRow(Base):
    __tablename__ = "directory_auth_client_secrets"

    user_id: Mapped[int] = mapped_column(ForeignKey("directory_users.id"), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # HMAC-SHA256, hex
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)


_SESSIONS = cast(Table, SessionRow.__table__)
_USERS = cast(Table, UserRow.__table__)

# An access token's session and its account, by session id: built once (statement construction costs more than
# running it), on the tables rather than the mapped classes, so no ORM objects are loaded per request.
_LIVE_ACCESS = (
    select(
        _SESSIONS.c.id,
        _SESSIONS.c.login,
        _SESSIONS.c.kind,
        _SESSIONS.c.amr,
        _SESSIONS.c.auth_time,
        _SESSIONS.c.last_used_at,
        _SESSIONS.c.expires_at,
        _SESSIONS.c.revoked_at,
        _USERS.c.id.label("user_id"),
        _USERS.c.kind.label("user_kind"),
        _USERS.c.status,
        _USERS.c.expires_at.label("user_expires_at"),
        _USERS.c.locked_until,
    )
    .join(_USERS, _USERS.c.id == _SESSIONS.c.user_id)
    .where(_SESSIONS.c.id == bindparam("sid"))
)
_INSERT_SESSION = insert(_SESSIONS)
_INSERT_REFRESH_TOKEN = insert(cast(Table, RefreshTokenRow.__table__))


def _account_usable(
    status: str, expires_at: dt.datetime | None, locked_until: dt.datetime | None, now: dt.datetime
) -> bool:
    """Active, not expired, not temporarily locked."""
    if status != "active":
        return False
    if expires_at is not None and expires_at <= now:
        return False
    return not (locked_until is not None and locked_until > now)


# -- values ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str | None
    session_id: str
    claims: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class AccessClaims:
    """A verified access token whose session is still alive."""

    login: str
    kind: str  # person | service
    session_id: str
    auth_time: dt.datetime
    amr: tuple[str, ...]
    claims: Mapping[str, Any]

    @property
    def strong(self) -> bool:
        return bool(STRONG_METHODS & set(self.amr))


@dataclasses.dataclass(frozen=True)
class AuthorizedAccess:
    """A verified access token of a usable account, with the account's kind and current role assignments."""

    access: AccessClaims
    kind: str  # person | service, from the account
    assignments: tuple[RoleAssignment, ...]

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset(p for assignment in self.assignments for p in assignment.permissions)


@dataclasses.dataclass(frozen=True)
class RoleDefinition:
    name: str
    display_name: str
    description: str
    permissions: tuple[str, ...]


# -- the service ------------------------------------------------------------------------------------------


class AuthService:
    """Logins, sessions, tokens, second factors and client secrets.  Thread-safe."""

    def __init__(
        self,
        directory: DirectoryService,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        keys: JWTKeys,
        *,
        settings: AuthSettings | None = None,
        sealing_key: bytes,
        client_secret_key: bytes,
        certificate_checker: CertificateChecker | None = None,
        clock: Clock = utc_now,
        alerts: AlertChannel | None = None,
    ) -> None:
        self.directory = directory
        self.sessions = sessions
        self.audit = audit
        self.keys = keys
        self.settings = settings or AuthSettings.model_validate({})
        self._sealer = AESGCM(hashlib.sha256(sealing_key).digest())
        self._client_key = client_secret_key
        self.certificate_checker = certificate_checker
        self.clock = clock
        self.alerts = alerts
        # Every authenticated request reads its session, account and roles.  On SQLite these reads go through a
        # plain connection of their own (core.store.SQLiteReader), five times cheaper than a Session.
        self._reader = sqlite_reader(sessions.kw.get("bind"))
        self._live_query = self._reader.prepare(_LIVE_ACCESS) if self._reader is not None else None
        self._assignments_query = self._reader.prepare(ASSIGNMENTS) if self._reader is not None else None

    def close(self) -> None:
        """Close the reader's own database connections (the platform calls this when it closes)."""
        if self._reader is not None:
            self._reader.close()

    # -- helpers -----------------------------------------------------------------------------------------

    def _audit(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        *,
        outcome: str = "success",
        source: str = "",
    ) -> None:
        self.audit.append(
            session,
            actor=actor[:200],
            action=action,
            target=target[:500],
            outcome=outcome,
            source=(source or "unknown")[:100],
            details=details or {},
        )

    @staticmethod
    def _event(
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        *,
        outcome: str = "success",
        source: str = "",
    ) -> AuditEvent:
        """The audit event :meth:`_audit` would append, for a caller that appends it later."""
        return AuditEvent(actor=actor[:200], action=action, target=target[:500], outcome=outcome,
                          source=(source or "unknown")[:100], details=details or {})

    def _audit_alone(self, *args: Any, **kwargs: Any) -> None:
        with transaction(self.sessions) as session:
            self._audit(session, *args, **kwargs)

    @staticmethod
    def _user(session: Session, login: str) -> UserRow | None:
        return session.scalar(select(UserRow).where(UserRow.login == login.strip().lower()))

    def _usable(self, row: UserRow | None, now: dt.datetime) -> bool:
        """Active, not expired, not temporarily locked."""
        if row is None:
            return False
        return _account_usable(row.status, row.expires_at, row.locked_until, now)

    def _seal(self, user_id: int, secret: bytes) -> str:
        nonce = secrets.token_bytes(12)
        return base64.b64encode(nonce + self._sealer.encrypt(nonce, secret, f"totp:{user_id}".encode())).decode()

    def _unseal(self, user_id: int, sealed: str) -> bytes:
        raw = base64.b64decode(sealed)
        return self._sealer.decrypt(raw[:12], raw[12:], f"totp:{user_id}".encode())

    def _start_session(
        self,
        session: Session,
        user: UserRow | Account,
        kind: str,
        amr: Iterable[str],
        source: str,
        lifetime: dt.timedelta,
    ) -> SessionRow:
        """Insert a new session; the object returned holds its values (it is not attached to ``session``)."""
        now = self.clock()
        values = {
            "id": secrets.token_urlsafe(24),
            "user_id": user.id,
            "login": user.login,
            "kind": kind,
            "amr": " ".join(amr),
            "auth_time": now,
            "created_at": now,
            "last_used_at": now,
            "expires_at": now + lifetime,
            "revoked_at": None,
            "revoke_reason": None,
            "source": source[:100],
        }
        # A prebuilt Core insert: a new row that nothing else in the transaction touches needs none of the
        # unit of work's bookkeeping, which costs more than the insert itself on every login.
        session.execute(_INSERT_SESSION, values)
        return SessionRow(**values)

    def _issue(self, session: Session, row: SessionRow, user: UserRow | Account, *, refresh: bool) -> TokenSet:
        lifetime_minutes = (
            self.settings.client_token_minutes if row.kind == "client" else self.settings.access_token_minutes
        )
        claims: dict[str, Any] = {
            "sub": user.login,
            "sid": row.id,
            "auth_time": int(row.auth_time.timestamp()),
            "amr": row.amr.split(),
            "kind": user.kind,
            "client_id": user.login if row.kind == "client" else "hengxin",
        }
        token, full = self.keys.encode(claims, dt.timedelta(minutes=lifetime_minutes))
        refresh_token = None
        if refresh:
            refresh_token = random_token(REFRESH_PREFIX)
            session.execute(
                _INSERT_REFRESH_TOKEN,
                {"token_hash": sha256_hex(refresh_token), "session_id": row.id, "issued_at": self.clock(),
                 "used_at": None},
            )
        return TokenSet(token, lifetime_minutes * 60, refresh_token, row.id, full)

    # -- password (+ TOTP) login -----------------------------------------------------------------------------

    def login_password(self, login: str, password: str, totp_code: str | None, source: str) -> TokenSet:
        """Check the password (through the directory: lockout and source blocking apply), then the TOTP code
        when the account has a confirmed second factor; start a session and issue tokens.

        The second factor, the session, the tokens and the ``auth.login`` record are written in the transaction
        that records the directory's password check, so a login costs one commit.

        Raises ``InvalidCredentials`` (every failure, including a wrong or replayed code),
        ``PasswordExpired`` or :class:`SecondFactorRequired` (right password, no code sent).
        """

        def after_password(session: Session, row: Account) -> tuple[TokenSet | str, list[AuditEvent]]:
            # Runs inside the directory's success transaction: a refusal is returned (so the password check,
            # the code's failure count and the audit records still commit) and raised after the commit.  The
            # auth.login record is returned to be appended with the directory's record.
            now = self.clock()
            factor = session.get(TOTPRow, row.id)
            amr = ["pwd"]
            failure: str | None = None
            if factor is not None and factor.confirmed_at is not None:
                if not totp_code:
                    failure = "second_factor_missing"
                elif factor.locked_until is not None and factor.locked_until > now:
                    failure = "second_factor_locked"
                else:
                    step = totp.matching_step(
                        self._unseal(row.id, factor.secret_sealed), totp_code, now, after_step=factor.last_step
                    )
                    if step is None:
                        factor.failures += 1
                        failure = "wrong_code"
                        if factor.failures >= self.settings.totp_max_failures:
                            factor.failures = 0
                            factor.locked_until = now + dt.timedelta(seconds=self.settings.totp_lockout_seconds)
                            failure = "wrong_code_locked"
                    else:
                        factor.last_step, factor.failures, factor.locked_until = step, 0, None
                        amr = ["pwd", "otp", "mfa"]
            if failure is None:
                record = self._start_session(
                    session, row, "login", amr, source, dt.timedelta(hours=self.settings.session_absolute_hours)
                )
                tokens = self._issue(session, record, row, refresh=True)
                return tokens, [self._event(
                    f"user:{row.login}", "auth.login", f"user:{row.login}",
                    {"method": "password", "amr": amr, "session": record.id, "jti": tokens.claims["jti"]},
                    source=source,
                )]
            return failure, [self._event(
                f"user:{row.login}", "auth.login", f"user:{row.login}",
                {"method": "password", "reason": failure}, outcome="failure", source=source,
            )]

        try:
            outcome = self.directory.authenticate_within(login, password, source, after_password)
        except InvalidCredentials:
            self._audit_alone(
                f"user:{login[:100]}", "auth.login", f"user:{login[:100]}", {"method": "password",
                                                                                 "reason": "password"},
                outcome="failure", source=source,
            )
            raise
        if isinstance(outcome, TokenSet):
            return outcome
        if outcome == "second_factor_missing":
            raise SecondFactorRequired(
                "this account needs a one-time code: send 'totp' with the password",
                detail_zh="此账户需要一次性验证码，请随密码一并提交 totp", methods=["totp"],
            )
        raise InvalidCredentials()

    # -- certificate login -------------------------------------------------------------------------------------

    def login_certificate(self, certificate_der: bytes, source: str) -> TokenSet:
        """Log in with a client certificate (already verified by the TLS proxy as belonging to the client).

        The certificate must be issued by our CA, valid and not revoked now, and bound to an active user
        (``owner = user:<login>``).  Every failure raises ``InvalidCredentials``; the reason is audited.
        """
        fingerprint = hashlib.sha256(certificate_der).hexdigest()
        reason: str | None = None
        login = ""
        if self.certificate_checker is None:
            reason = "certificate_login_unavailable"
        else:
            try:
                login = self.certificate_checker(certificate_der)
            except CertificateRefused as e:
                reason = e.reason
        now = self.clock()
        with transaction(self.sessions) as session:
            row = self._user(session, login) if reason is None else None
            if reason is None and not self._usable(row, now):
                reason = "account_unusable" if row is not None else "unknown_user"
            if reason is not None or row is None:
                target = f"user:{login}" if login else f"certificate:{fingerprint[:32]}"
                self._audit(session, target, "auth.login", target,
                            {"method": "certificate", "reason": reason, "fingerprint": fingerprint},
                            outcome="failure", source=source)
            else:
                record = self._start_session(
                    session, row, "login", ["x509"], source, dt.timedelta(hours=self.settings.session_absolute_hours)
                )
                tokens = self._issue(session, record, row, refresh=True)
                row.last_login_at = now
                self._audit(
                    session, f"user:{row.login}", "auth.login", f"user:{row.login}",
                    {"method": "certificate", "amr": ["x509"], "session": record.id, "fingerprint": fingerprint,
                     "jti": tokens.claims["jti"]},
                    source=source,
                )
                return tokens
        raise InvalidCredentials()

    # -- refresh, client credentials ---------------------------------------------------------------------------

    def _session_alive(self, record: Any, now: dt.datetime) -> str | None:
        """Why the session (a SessionRow, or a row of its table) cannot be used any more, or None."""
        if record is None:
            return "unknown_session"
        if record.revoked_at is not None:
            return "session_revoked"
        if record.expires_at <= now:
            return "session_expired"
        idle = dt.timedelta(minutes=self.settings.session_idle_minutes)
        if record.kind == "login" and record.last_used_at + idle <= now:
            return "session_idle"
        return None

    def refresh(self, refresh_token: str, source: str) -> TokenSet:
        """Rotate a refresh token: the old one is spent, a new one and a new access token are issued.

        A spent token used again revokes its whole session (somebody holds a copy).  Raises
        :class:`InvalidGrant` for any refusal.
        """
        now = self.clock()
        reason = None
        reused = None
        with transaction(self.sessions) as session:
            token = session.scalar(
                select(RefreshTokenRow).where(RefreshTokenRow.token_hash == sha256_hex(refresh_token)).with_for_update()
            )
            record = session.get(SessionRow, token.session_id) if token is not None else None
            if token is None:
                reason = "unknown_token"
            elif token.used_at is not None:
                reason = "reused"
                if record is not None and record.revoked_at is None:
                    record.revoked_at, record.revoke_reason = now, "refresh_reuse"
                    reused = record.login
            else:
                reason = self._session_alive(record, now)
            user = session.get(UserRow, record.user_id) if record is not None else None
            if reason is None and not self._usable(user, now):
                reason = "account_unusable"
            if reason is None and record is not None and user is not None and token is not None:
                token.used_at = now
                record.last_used_at = now
                tokens = self._issue(session, record, user, refresh=True)
                self._audit(session, f"user:{user.login}", "auth.token.refresh", f"session:{record.id}",
                            {"jti": tokens.claims["jti"]}, source=source)
                return tokens
            target = f"session:{record.id}" if record is not None else "session:unknown"
            actor = f"user:{record.login}" if record is not None else "anonymous"
            self._audit(session, actor, "auth.token.refresh", target, {"reason": reason},
                        outcome="failure", source=source)
        if reused and self.alerts is not None:
            self.alerts.raise_alert(
                "auth.refresh_token_reuse", "warning",
                f"a spent refresh token of {reused!r} was used again; the session was revoked",
                login=reused, source=source,
            )
        raise InvalidGrant("the refresh token is not valid", detail_zh="刷新令牌无效", error="invalid_grant")

    def create_client_secret(self, actor: str, login: str, *, source: str = "") -> str:
        """A new client secret for a service account (replacing any previous one); shown once.

        Raises ``UserNotFound`` or :class:`NotAServiceAccount`.
        """
        secret = random_token(CLIENT_SECRET_PREFIX)
        self.directory.get_user(login)  # UserNotFound
        with transaction(self.sessions) as session:
            row = self._user(session, login)
            assert row is not None
            if row.kind != "service":
                raise NotAServiceAccount(
                    f"{row.login!r} is a person; client secrets are for service accounts",
                    detail_zh=f"{row.login!r} 不是服务账户",
                )
            existing = session.get(ClientSecretRow, row.id)
            digest = keyed_hash(self._client_key, secret)
            if existing is None:
                session.add(ClientSecretRow(user_id=row.id, secret_hash=digest, created_at=self.clock(),
                                            created_by=actor[:200]))
            else:
                existing.secret_hash, existing.created_at, existing.created_by = digest, self.clock(), actor[:200]
            self._audit(session, actor, "auth.client_secret.create", f"user:{row.login}",
                        {"replaced": existing is not None}, source=source)
        return secret

    def client_credentials(self, client_id: str, client_secret: str, source: str) -> TokenSet:
        """The client-credentials grant for a service account; raises :class:`InvalidClient`."""
        now = self.clock()
        digest = keyed_hash(self._client_key, client_secret)
        with transaction(self.sessions) as session:
            row = self._user(session, client_id)
            stored = session.get(ClientSecretRow, row.id) if row is not None else None
            expected = stored.secret_hash if stored is not None else "0" * 64
            matches = secrets.compare_digest(expected, digest) and stored is not None
            reason = None
            if not matches:
                reason = "wrong_secret" if stored is not None else "unknown_client"
            elif row is None or row.kind != "service" or not self._usable(row, now):
                reason = "account_unusable"
            if reason is None and row is not None:
                lifetime = dt.timedelta(minutes=self.settings.client_token_minutes)
                record = self._start_session(session, row, "client", ["client_secret"], source, lifetime)
                tokens = self._issue(session, record, row, refresh=False)
                self._audit(session, f"service:{row.login}", "auth.token.issue", f"user:{row.login}",
                            {"grant_type": "client_credentials", "jti": tokens.claims["jti"]}, source=source)
                return tokens
            self._audit(session, f"service:{client_id[:100]}", "auth.token.issue", f"user:{client_id[:100]}",
                        {"grant_type": "client_credentials", "reason": reason}, outcome="failure", source=source)
        raise InvalidClient("client authentication failed", detail_zh="客户端认证失败", error="invalid_client",
                            _headers={"WWW-Authenticate": 'Basic realm="hengxin"'})

    # -- access tokens ----------------------------------------------------------------------------------------

    def verify_access_token(self, token: str) -> AccessClaims:
        """Verify the signature, expiry, issuer and audience, that the session is alive and that its account
        may log in now (active, not expired, not locked).

        Raises :class:`directory.tokens.InvalidAccessToken`.
        """
        claims = self.keys.decode(token)
        if self._reader is not None:
            access, _ = self._live_access(None, claims)
            return access
        with read_transaction(self.sessions) as session:
            access, _ = self._live_access(session, claims)
        return access

    def _live_access(self, session: Session | None, claims: Mapping[str, Any]) -> tuple[AccessClaims, Any]:
        """The access of verified ``claims`` whose session is alive and whose account is usable, with the
        session-and-account row; raises InvalidAccessToken.  One indexed query (every authenticated request
        and every introspection runs it), in ``session`` or, with None, through the SQLite reader."""
        parameters = {"sid": str(claims.get("sid", ""))}
        if session is None:
            assert self._reader is not None and self._live_query is not None
            found = self._reader.rows(self._live_query, parameters)
            row = found[0] if found else None
        else:
            row = session.execute(_LIVE_ACCESS, parameters).first()
        now = self.clock()
        reason = self._session_alive(row, now)
        if reason is None and row is not None and row.login != claims.get("sub"):
            reason = "session mismatch"
        if reason is None and row is not None and not _account_usable(
            row.status, row.user_expires_at, row.locked_until, now
        ):
            reason = "account_unusable"
        if reason is not None or row is None:
            raise InvalidAccessToken(reason or "unknown_session")
        access = AccessClaims(
            login=row.login,
            kind=str(claims.get("kind", "person")),
            session_id=row.id,
            auth_time=row.auth_time,
            amr=tuple(row.amr.split()),
            claims=claims,
        )
        return access, row

    def authorize_access_token(self, token: str) -> AuthorizedAccess:
        """Everything the authorisation layer needs for a bearer JWT, read in one snapshot transaction.

        :meth:`verify_access_token` plus the account's kind and its role assignments as they are now, so a
        revoked role, an ended session or a disabled account takes effect at once.  Two queries.  Raises
        :class:`directory.tokens.InvalidAccessToken` for anything that must not be let in (the reason is the
        exception's message).
        """
        claims = self.keys.decode(token)
        if self._reader is not None:
            assert self._assignments_query is not None
            with self._reader.snapshot():
                access, row = self._live_access(None, claims)
                rows = self._reader.rows(self._assignments_query, {"user_id": row.user_id})
            assignments = DirectoryService.assignments_from(rows, row.login)
            return AuthorizedAccess(access, row.user_kind, tuple(assignments))
        with read_transaction(self.sessions) as session:
            access, row = self._live_access(session, claims)
            assignments = DirectoryService.assignments_of(session, row.user_id, row.login)
        return AuthorizedAccess(access, row.user_kind, tuple(assignments))

    # -- revocation, logout, introspection ---------------------------------------------------------------------

    def _end_session(self, session: Session, record: SessionRow, reason: str, actor: str, source: str) -> None:
        if record.revoked_at is None:
            record.revoked_at, record.revoke_reason = self.clock(), reason
        self._audit(session, actor, "auth.token.revoke", f"session:{record.id}",
                    {"reason": reason, "login": record.login}, source=source)

    def revoke(self, token: str, source: str, *, token_type_hint: str | None = None) -> None:
        """RFC 7009: revoke a refresh or access token, ending its session; unknown tokens are ignored."""
        with transaction(self.sessions) as session:
            record = None
            if token.startswith(REFRESH_PREFIX):
                row = session.scalar(select(RefreshTokenRow).where(RefreshTokenRow.token_hash == sha256_hex(token)))
                record = session.get(SessionRow, row.session_id) if row is not None else None
            else:
                try:
                    claims = self.keys.decode(token)
                except InvalidAccessToken:
                    claims = None
                if claims is not None:
                    record = session.get(SessionRow, str(claims.get("sid", "")))
            if record is not None:
                self._end_session(session, record, "revoked", f"user:{record.login}", source)

    def logout(self, session_id: str, source: str) -> None:
        with transaction(self.sessions) as session:
            record = session.get(SessionRow, session_id)
            if record is not None:
                self._end_session(session, record, "logout", f"user:{record.login}", source)

    def revoke_sessions(self, actor: str, login: str, *, source: str = "") -> int:
        """End every live session of ``login`` (an administrator's action, or after a disable)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            result = session.execute(
                update(SessionRow)
                .where(SessionRow.login == login.strip().lower(), SessionRow.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason="administrator")
            )
            count = int(getattr(result, "rowcount", 0) or 0)
            self._audit(session, actor, "auth.token.revoke", f"user:{login}", {"reason": "administrator",
                                                                                "sessions": count}, source=source)
        return count

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: ``{"active": false}`` for anything not currently usable: expired, revoked, spent or unknown,
        or its account disabled, locked or expired."""
        now = self.clock()
        if token.startswith(REFRESH_PREFIX):
            with read_transaction(self.sessions) as session:
                row = session.scalar(select(RefreshTokenRow).where(RefreshTokenRow.token_hash == sha256_hex(token)))
                record = session.get(SessionRow, row.session_id) if row is not None else None
                if row is None or row.used_at is not None or self._session_alive(record, now) is not None:
                    return {"active": False}
                assert record is not None
                if not self._usable(session.get(UserRow, record.user_id), now):
                    return {"active": False}
                return {
                    "active": True, "token_type": "refresh_token", "sub": record.login, "username": record.login,
                    "sid": record.id, "iat": int(row.issued_at.timestamp()),
                    "exp": int(record.expires_at.timestamp()), "iss": self.keys.issuer,
                }
        try:
            verified = self.verify_access_token(token)
        except InvalidAccessToken:
            return {"active": False}
        claims = dict(verified.claims)
        return {"active": True, "token_type": "access_token", "username": verified.login, **claims}

    # -- TOTP --------------------------------------------------------------------------------------------------

    def enrol_totp(self, login: str, *, source: str = "") -> str:
        """Start (or restart) enrolment: a new secret, returned only here as an ``otpauth://`` URI.

        Raises :class:`TOTPStateError` when a confirmed factor exists (an administrator resets it first).
        """
        secret = totp.new_secret()
        with transaction(self.sessions) as session:
            row = self._user(session, login)
            assert row is not None
            existing = session.get(TOTPRow, row.id)
            if existing is not None and existing.confirmed_at is not None:
                raise TOTPStateError("a second factor is enrolled already; ask an administrator to reset it",
                                     detail_zh="已绑定第二认证因素，如需更换请联系管理员重置")
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(TOTPRow(user_id=row.id, secret_sealed=self._seal(row.id, secret), failures=0,
                                created_at=self.clock()))
            self._audit(session, f"user:{row.login}", "auth.totp.enrol", f"user:{row.login}", source=source)
            account = row.login
        return totp.otpauth_uri(secret, issuer=self.settings.totp_issuer, account=account)

    def confirm_totp(self, login: str, code: str, *, source: str = "") -> None:
        """Confirm enrolment with a code from the app; from then on logins need a code.

        Raises :class:`TOTPStateError` (nothing pending) or :class:`InvalidTOTPCode`.
        """
        now = self.clock()
        with transaction(self.sessions) as session:
            row = self._user(session, login)
            assert row is not None
            factor = session.get(TOTPRow, row.id)
            if factor is None or factor.confirmed_at is not None:
                raise TOTPStateError("no enrolment is pending", detail_zh="没有待确认的绑定")
            step = totp.matching_step(self._unseal(row.id, factor.secret_sealed), code, now)
            if step is None:
                raise InvalidTOTPCode("the code does not match", detail_zh="验证码不正确")
            factor.confirmed_at, factor.last_step = now, step
            self._audit(session, f"user:{row.login}", "auth.totp.confirm", f"user:{row.login}", source=source)

    def reset_totp(self, actor: str, login: str, *, source: str = "") -> bool:
        """Remove a user's second factor (lost phone); False if there was none."""
        self.directory.get_user(login)  # UserNotFound
        with transaction(self.sessions) as session:
            row = self._user(session, login)
            assert row is not None
            factor = session.get(TOTPRow, row.id)
            if factor is None:
                return False
            session.delete(factor)
            self._audit(session, actor, "auth.totp.reset", f"user:{row.login}", source=source)
        return True

    def has_totp(self, login: str) -> bool:
        with read_transaction(self.sessions) as session:
            row = self._user(session, login)
            factor = session.get(TOTPRow, row.id) if row is not None else None
            return factor is not None and factor.confirmed_at is not None

    # -- keys ----------------------------------------------------------------------------------------------

    def rotate_signing_key(self, actor: str, *, source: str = "") -> str:
        """A new JWT signing key; the previous one stays published and accepted until the next rotation."""
        with transaction(self.sessions) as session:
            retired, key_id = self.keys.rotate(session)
            self._audit(session, actor, "auth.key.rotate", "jwt",
                        {"retired_kid": retired.kid if retired else None}, source=source)
        self.keys.load()
        return self.keys.ensure().kid

    # -- roles and duties ------------------------------------------------------------------------------------

    def ensure_roles(self, definitions: Iterable[RoleDefinition], *, actor: str = "system") -> list[str]:
        """Create the built-in roles that are missing (idempotent); returns the names created."""
        existing = {role.name for role in self.directory.list_roles(limit=500)}
        created = []
        for definition in definitions:
            if definition.name in existing:
                continue
            try:
                self.directory.create_role(
                    actor, name=definition.name, permissions=definition.permissions,
                    display_name=definition.display_name, description=definition.description,
                )
                created.append(definition.name)
            except DuplicateRole:  # created by another process meanwhile
                continue
        return created

    @staticmethod
    def check_role_grant(session: Session, user_id: int, login: str, role: str) -> None:
        """The directory's grant hook: refuse a second one of the three administrator roles.

        Runs inside the grant's transaction, with the user's row locked so two concurrent grants
        cannot both pass.  Raises :class:`SeparationOfDuties`.
        """
        if role not in EXCLUSIVE_ROLES:
            return
        session.execute(select(UserRow.id).where(UserRow.id == user_id).with_for_update())
        held = set(
            session.scalars(
                select(RoleRow.name)
                .join(RoleAssignmentRow, RoleAssignmentRow.role_id == RoleRow.id)
                .where(RoleAssignmentRow.user_id == user_id, RoleRow.name.in_(EXCLUSIVE_ROLES))
            )
        )
        conflicting = sorted(held - {role})
        if conflicting:
            raise SeparationOfDuties(
                f"{login!r} holds {', '.join(conflicting)}; one person may hold only one of "
                f"{', '.join(sorted(EXCLUSIVE_ROLES))}",
                detail_zh=f"{login!r} 已担任 {', '.join(conflicting)}：系统管理员、安全管理员、审计管理员"
                "不得由同一人兼任",
                held=conflicting, role=role,
            )
