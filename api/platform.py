"""The composition root: builds the platform's parts from settings and wires them together.

Domain packages never import each other; where one needs another (signing
needs a timestamp, backup needs a database dump) the small interfaces are
connected here.  The CLI and the HTTP app both start from :func:`open_platform`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import secrets as pysecrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.alerts import AlertChannel
from core.audit import AuditLog
from core.clock import Clock, utc_now
from core.config import Settings, check_production_safety
from core.errors import ConfigurationError, Conflict, HengxinError
from core.keys.base import KeyStore
from core.keys.factory import open_keystore, open_secret_store
from core.secrets import SecretStore
from core.store import (
    build_engine,
    migrate,
    pending_migrations,
    read_only_engine,
    read_transaction,
    session_factory,
    transaction,
)
from core.store.models import APITokenRow, PlatformKeyRow

log = logging.getLogger("hengxin.platform")


def migration_locations() -> list[Path]:
    """Alembic folders of the domain packages, in addition to core's own."""
    from api.components import components

    return [module.MIGRATIONS for module in components() if hasattr(module, "MIGRATIONS")]


ADMIN_TOKEN_SECRET = "admin-token"  # noqa: S105 - the name of a secret, not a secret
SYSTEM_ACTOR = "system"


@dataclasses.dataclass
class Platform:
    """Everything a request or a command needs, built once per process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secrets: SecretStore
    keystore: KeyStore
    alerts: AlertChannel
    clock: Clock
    audit: AuditLog | None = None
    services: dict[str, Any] = dataclasses.field(default_factory=dict)

    def transaction(self) -> Any:
        return transaction(self.sessions)

    def read_transaction(self) -> Any:
        """A snapshot for lookups that write nothing (no write lock on SQLite; READ ONLY on PostgreSQL)."""
        return read_transaction(self.sessions)

    @functools.cached_property
    def lookups(self) -> Engine:
        """An engine for lookups of one statement (see ``core.store.read_only_engine``)."""
        return read_only_engine(self.sessions) or self.engine

    @property
    def local_reads(self) -> bool:
        """Whether a snapshot read is cheaper done on the event loop than handed to a worker thread.

        With SQLite a lookup is a lock-free WAL snapshot read of a local file, tens of microseconds: less than
        the thread hand-off.  A PostgreSQL query waits on the network, so it runs in a worker thread.
        """
        return bool(self.engine.dialect.name == "sqlite")

    def require_audit(self) -> AuditLog:
        if self.audit is None:
            raise ConfigurationError("the platform is not initialised: run `hengxin init`")
        return self.audit

    def admin_engine(self) -> Engine:
        """The schema owner's engine (migrations, audit pruning); the same engine when no admin URL is set."""
        if not self.settings.database.admin_url:
            return self.engine
        return build_engine(self.settings.database_admin_url, password=admin_database_password(self.settings,
                                                                                                self.secrets))

    def close(self) -> None:
        for service in self.services.values():
            closer = getattr(service, "close", None)
            if callable(closer):
                closer()
        self.alerts.close()
        self.keystore.close()
        self.engine.dispose()


InitHook = Callable[[Platform, dict[str, Any]], dict[str, Any]]


def _hooks(name: str) -> list[Any]:
    from api.components import components

    return [getattr(module, name) for module in components() if hasattr(module, name)]


def admin_database_password(settings: Settings, secrets: SecretStore) -> str | None:
    """The schema owner's password: [database] admin_password_secret, else password_secret, else none."""
    name = settings.database.admin_password_secret or settings.database.password_secret
    return secrets.get(name) if name else None


def _engine(settings: Settings, secrets: SecretStore) -> Engine:
    name = settings.database.password_secret
    password = secrets.get(name) if name else None
    return build_engine(
        settings.database_url, pool_size=settings.database.pool_size, echo=settings.database.echo, password=password
    )


def open_platform(
    settings: Settings, *, clock: Clock = utc_now, apply_migrations: bool = False, alerts_enabled: bool = True
) -> Platform:
    """Build the platform.  Raises ConfigurationError when it is not initialised or unsafe."""
    problems = check_production_safety(settings)
    if problems:
        raise ConfigurationError("unsafe production configuration: " + "; ".join(problems))
    secrets = open_secret_store(settings)
    keystore = open_keystore(settings, secrets)
    engine = _engine(settings, secrets)
    if apply_migrations:
        migrate(engine, migration_locations())
    elif pending_migrations(engine, migration_locations()):
        raise ConfigurationError("the database schema is not current: run `hengxin db upgrade` (or `hengxin init`)")
    alerts = AlertChannel(
        instance=settings.instance.name,
        webhook_url=settings.alerts.webhook_url,
        webhook_timeout=settings.alerts.webhook_timeout_seconds,
        syslog_address=settings.alerts.syslog_address,
        clock=clock,
        enabled=alerts_enabled,
    )
    platform = Platform(settings, engine, session_factory(engine), secrets, keystore, alerts, clock)
    with platform.transaction() as session:
        audit_key = session.get(PlatformKeyRow, "audit")
    if audit_key is not None:
        platform.audit = AuditLog(
            keystore,
            audit_key.key_id,
            instance=settings.instance.name,
            checkpoint_every=settings.audit.checkpoint_every,
            checkpoint_minutes=settings.audit.checkpoint_minutes,
            clock=clock,
        )
        for hook in _hooks("open_hook"):
            hook(platform)
    return platform


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A bearer token: 256 random bits, recognisable by its prefix in leak scanners."""
    return "hxt_" + pysecrets.token_urlsafe(32)


class DuplicateToken(Conflict):
    code = "tokens.duplicate_name"
    title_en = "A token with this name exists"
    title_zh = "同名令牌已存在"


def create_api_token(platform: Platform, name: str, permissions: str, *, actor: str = SYSTEM_ACTOR) -> str:
    """Create a bearer token, store its hash, audit it, and return the token (shown once).

    Raises DuplicateToken when the name is taken.
    """
    token = new_token()
    try:
        with platform.transaction() as session:
            session.add(
                APITokenRow(
                    name=name,
                    token_hash=hash_token(token),
                    permissions=permissions,
                    created_at=platform.clock(),
                    revoked=False,
                )
            )
            session.flush()
            platform.require_audit().append(
                session,
                actor=actor,
                action="token.create",
                target=f"token:{name}",
                details={"permissions": permissions},
            )
    except IntegrityError:
        raise DuplicateToken(f"a token named {name!r} exists", detail_zh=f"令牌 {name!r} 已存在") from None
    return token


@dataclasses.dataclass(frozen=True)
class InitResult:
    created: bool
    data_dir: Path
    admin_token_file: Path | None
    audit_key_fingerprint: str
    details: dict[str, Any]


def initialise(settings: Settings, *, clock: Clock = utc_now) -> InitResult:
    """Create a new instance (idempotent): passphrase, keys, schema, audit key, admin token, domain hooks."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secrets = open_secret_store(settings)
    if settings.keys.backend == "file" and not secrets.exists(settings.keys.passphrase_secret):
        if settings.instance.environment == "production":
            raise ConfigurationError(
                f"no master passphrase: put it in the secret store as {settings.keys.passphrase_secret!r} first"
            )
        secrets.put(settings.keys.passphrase_secret, pysecrets.token_urlsafe(32))
        log.info("generated a master passphrase", extra={"secret": settings.keys.passphrase_secret})
    platform = open_platform(settings, clock=clock, apply_migrations=True)
    try:
        created = platform.audit is None
        if created:
            info = platform.keystore.generate("audit", settings.keys.default_algorithm)
            with platform.transaction() as session:
                session.add(PlatformKeyRow(purpose="audit", key_id=info.key_id, created_at=clock()))
            platform.close()
            platform = open_platform(settings, clock=clock)
        audit = platform.require_audit()
        token_file: Path | None = None
        with platform.transaction() as session:
            has_admin = session.execute(select(APITokenRow.id).where(APITokenRow.name == "bootstrap-admin")).first()
        if has_admin is None:
            token = create_api_token(platform, "bootstrap-admin", "*")
            platform.secrets.put(ADMIN_TOKEN_SECRET, token)
            reference = platform.secrets.reference(ADMIN_TOKEN_SECRET)
            token_file = reference
        details: dict[str, Any] = {}
        for hook in _hooks("init_hook"):
            details.update(hook(platform, details))
        if created:
            with platform.transaction() as session:
                audit.append(
                    session,
                    actor=SYSTEM_ACTOR,
                    action="platform.initialise",
                    target=settings.instance.name,
                    details={"key_backend": settings.keys.backend},
                )
        fingerprint = platform.keystore.info(audit.key_id).fingerprint
        return InitResult(created, settings.data_dir, token_file, fingerprint, details)
    except HengxinError:
        raise
    finally:
        platform.close()
