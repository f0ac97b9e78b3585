"""Composition of the timestamp authority: migrations, key and certificate, clock discipline, routes, CLI.

``open_hook`` builds :class:`timestamp.service.TimestampService` into
``platform.services["tsa"]`` with its batching recorder, loads the TSA key
(custodial, in the key store) and the newest valid TSA certificate issued by
the CA component, and adds two background tasks (the NTP poll and the
certificate check, which renews the certificate before it expires) and a
readiness probe.  ``init_hook`` asks the CA for the TSA certificate on
``hengxin init``.

The timestamp package knows nothing of the CA: this module finds the
certificate through ``platform.services["ca"]`` and hands the key, the
certificate and the chain over as :class:`timestamp.service.TSACredentials`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import timestamp

if TYPE_CHECKING:
    from cryptography import x509
    from fastapi import APIRouter

    from api.platform import Platform
    from ca.service import CAService
    from ca.store import CertificateInfo
    from timestamp.clock import ClockMonitor
    from timestamp.policy import Accuracy, TSAPolicy
    from timestamp.service import TimestampService, TSACredentials

MIGRATIONS = Path(timestamp.__file__).parent / "migrations"
CLI_NAME = "timestamp"

TSA_OWNER = "platform:tsa"
TSA_PROFILE = "tsa"
CERTIFICATE_CHECK_SECONDS = 300.0
RENEWAL_LEASE = "tsa.certificate_renewal"

log = logging.getLogger("hengxin.timestamp")


# -- configuration -------------------------------------------------------------------------------------


def accuracy_of(seconds: float) -> Accuracy:
    """The RFC 3161 Accuracy for a number of seconds (microsecond steps)."""
    from timestamp.policy import Accuracy

    micros_total = round(seconds * 1_000_000)
    whole, rest = divmod(micros_total, 1_000_000)
    millis, micros = divmod(rest, 1_000)
    return Accuracy(seconds=whole, millis=millis, micros=micros)


def policy_of(platform: Platform) -> TSAPolicy:
    """The TSA policy from ``[tsa]``. Raises TSAConfigurationError for unusable values."""
    from timestamp.policy import TSAPolicy

    settings = platform.settings.tsa
    return TSAPolicy(
        default_policy=settings.default_policy,
        accepted_policies=frozenset(settings.accepted_policies),
        hash_algorithms=frozenset(settings.hash_algorithms),
        accuracy=accuracy_of(settings.accuracy_seconds),
        include_tsa_name=settings.include_tsa_name,
    )


def build_clock_monitor(platform: Platform) -> ClockMonitor | None:
    """The NTP discipline from ``[tsa]``, or ``None`` when no server is configured (development only:
    the system clock is then trusted unchecked, and ``hengxin serve`` says so in a warning at start).

    Raises ConfigurationError in production without NTP servers: a TSA there
    must not vouch for a clock nobody checks.
    """
    from core.errors import ConfigurationError
    from timestamp.clock import AlertSeverity, ClockMonitor

    settings = platform.settings
    tsa = settings.tsa
    if not tsa.ntp_servers:
        if settings.instance.environment == "production":
            raise ConfigurationError(
                "[tsa] ntp_servers is empty: a production TSA must check its clock against NTP servers",
                detail_zh="[tsa] ntp_servers 为空：生产环境的时间戳服务必须用 NTP 服务器校验时钟",
            )
        return None

    def alert(message: str, severity: AlertSeverity) -> None:
        if severity is AlertSeverity.CRITICAL:
            platform.alerts.raise_alert("tsa.clock_unhealthy", "critical", message)
        else:
            platform.alerts.raise_alert("tsa.clock_recovered", "info", message)

    return ClockMonitor(
        tsa.ntp_servers,
        accuracy=tsa.max_clock_offset_seconds or tsa.accuracy_seconds,
        max_silence=tsa.max_silence_seconds,
        timeout=tsa.ntp_timeout_seconds,
        alert=alert,
    )


# -- the TSA certificate ---------------------------------------------------------------------------------


def _ca_of(platform: Platform) -> CAService | None:
    from ca.service import CAService

    service = platform.services.get("ca")
    return service if isinstance(service, CAService) else None


def current_certificate(platform: Platform) -> CertificateInfo | None:
    """The newest issued TSA certificate of the platform's custodial TSA key that is valid now."""
    from ca.service import CertificateQuery

    ca = _ca_of(platform)
    if ca is None:
        return None
    now = platform.clock()
    found = ca.search(CertificateQuery(owner=TSA_OWNER, profile=TSA_PROFILE, status="issued", limit=1000))
    valid = [c for c in found if c.key_id and c.der and c.not_before <= now < c.not_after]
    return max(valid, key=lambda c: c.id) if valid else None


def credentials_for(platform: Platform, info: CertificateInfo) -> TSACredentials:
    """Key-store signer, certificate and intermediates for ``info``."""
    from timestamp.service import TSACredentials

    ca = _ca_of(platform)
    assert ca is not None and info.key_id is not None and info.certificate is not None
    chain = tuple(c.certificate for c in ca.chain(info.ca) if not c.is_root)
    signer = platform.keystore.private_key(info.key_id)
    return TSACredentials(signer, info.certificate, chain, info.key_id)


def trust_of(platform: Platform) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The platform's root CAs (trusted) and its other CAs (intermediates), for verifying tokens."""
    ca = _ca_of(platform)
    if ca is None:
        return [], []
    cas = ca.list_cas()
    return [c.certificate for c in cas if c.is_root], [c.certificate for c in cas if not c.is_root]


def ensure_certificate(platform: Platform, *, actor: str) -> CertificateInfo:
    """The current TSA certificate, issued (with a new custodial key) by the issuing CA if there is none.

    Raises ConfigurationError without a CA, and the CA's errors when issuance fails.
    """
    from ca.service import IssueRequest
    from core.errors import ConfigurationError

    current = current_certificate(platform)
    if current is not None:
        return current
    ca = _ca_of(platform)
    if ca is None:
        raise ConfigurationError("the TSA needs the certificate authority: run `hengxin init`")
    settings = platform.settings
    result = ca.issue(
        IssueRequest(
            profile=TSA_PROFILE,
            key_mode="custodial",
            owner=TSA_OWNER,
            subject={
                "CN": settings.tsa.certificate_common_name,
                "O": settings.tsa.certificate_organisation or settings.ca.organisation,
            },
            key_algorithm=settings.tsa.key_algorithm,
        ),
        actor=actor,
    )
    log.info("issued the TSA certificate", extra={"fingerprint": result.certificate.fingerprint_sha256})
    return result.certificate


def renew_certificate(platform: Platform, *, actor: str, rekey: bool = False) -> CertificateInfo:
    """Renew the current TSA certificate (same key), or with ``rekey`` issue one for a new key,
    and start signing with it in this process.  Other processes pick it up at their next check.

    Raises TSAUnavailable when there is no current certificate, and the CA's errors.
    """
    from timestamp.service_errors import TSAUnavailable

    current = current_certificate(platform)
    ca = _ca_of(platform)
    if current is None or ca is None:
        raise TSAUnavailable(
            "there is no valid TSA certificate to renew: run `hengxin init`",
            detail_zh="没有可续期的时间戳服务证书，请运行 `hengxin init`",
        )
    if rekey:
        result = ca.rekey(current.id, actor=actor, key_algorithm=platform.settings.tsa.key_algorithm)
    else:
        result = ca.renew(current.id, actor=actor)
    service = service_of(platform)
    if service is not None:
        service.install(credentials_for(platform, result.certificate))
    return result.certificate


def check_certificate(platform: Platform, service: TimestampService) -> None:
    """Keep the installed certificate current: pick up one renewed elsewhere, renew one about to
    expire (one node per certificate, under a lease), withdraw one that is no longer valid."""
    from api.platform import SYSTEM_ACTOR
    from core.jobs import claim_run, lease_holder
    from core.store import transaction

    current = current_certificate(platform)
    installed = service.credentials
    if current is None:
        if installed is not None:
            service.uninstall()
            platform.alerts.raise_alert(
                "tsa.certificate_unavailable",
                "critical",
                "the TSA certificate expired or was revoked: no timestamps are issued",
            )
        return
    assert current.der is not None
    now = platform.clock()
    if current.not_after - now < dt.timedelta(days=platform.settings.tsa.renew_before_days):
        with transaction(platform.sessions) as session:
            claimed = claim_run(
                session,
                RENEWAL_LEASE,
                lease_holder("tsa:"),
                format(current.serial, "x"),
                dt.timedelta(minutes=10),
                now=now,
            )
        if claimed:
            renewed = renew_certificate(platform, actor=SYSTEM_ACTOR)
            platform.alerts.raise_alert(
                "tsa.certificate_renewed",
                "info",
                f"the TSA certificate was renewed; valid until {renewed.not_after.isoformat()}",
            )
            return
    if installed is None or installed.fingerprint != current.fingerprint_sha256:
        service.install(credentials_for(platform, current))


# -- hooks -----------------------------------------------------------------------------------------------


def service_of(platform: Platform) -> TimestampService | None:
    from timestamp.service import TimestampService

    service = platform.services.get("tsa")
    return service if isinstance(service, TimestampService) else None


def build_service(platform: Platform) -> TimestampService:
    """The timestamp service with its recorder and clock discipline, without credentials yet."""
    from timestamp.service import TimestampService, TokenRecorder

    settings = platform.settings.tsa
    policy = policy_of(platform)
    monitor = build_clock_monitor(platform)
    database = platform.engine.url
    recorder = TokenRecorder(
        platform.sessions,
        platform.require_audit(),
        window=settings.batch_window_ms / 1000,
        max_batch=settings.batch_max_size,
        # Worker processes on one SQLite file take turns through a lock file (see TokenRecorder).
        writer_lock=(
            Path(f"{database.database}.tsa-lock")
            if database.get_backend_name() == "sqlite" and database.database not in (None, "", ":memory:")
            else None
        ),
    )
    return TimestampService(
        sessions=platform.sessions,
        recorder=recorder,
        policy=policy,
        trust=lambda: trust_of(platform),
        clock=platform.clock,
        clock_monitor=monitor,
    )


def open_hook(platform: Platform) -> None:
    """Build the TSA, load its certificate, start the clock poll and certificate check, add the probe."""
    from timestamp.errors import ClockUnavailable
    from timestamp.service_errors import TSAUnavailable

    service = build_service(platform)
    platform.services["tsa"] = service
    current = current_certificate(platform)
    if current is not None:
        service.install(credentials_for(platform, current))
    else:
        log.info("no TSA certificate yet: `hengxin init` requests one")
    monitor = service.clock_monitor
    tasks = platform.services.setdefault("background_tasks", [])
    if monitor is not None:
        interval = platform.settings.tsa.ntp_poll_interval_seconds

        async def poll_clock() -> None:
            # The first poll runs at once: until it answers, the clock is unknown and no token is issued.
            while True:
                try:
                    await asyncio.to_thread(monitor.poll)
                except Exception:  # noqa: BLE001 - the loop must survive; poll() itself never raises
                    log.exception("the NTP poll failed")
                await asyncio.sleep(interval)

        tasks.append(poll_clock)
    else:

        async def warn_unchecked_clock() -> None:
            # Logged by `hengxin serve` only: every CLI command opens the platform too.
            log.warning(
                "[tsa] ntp_servers is empty: the TSA trusts the system clock without checking it (development only)"
            )

        tasks.append(warn_unchecked_clock)

    async def certificate_check() -> None:
        while True:
            await asyncio.sleep(CERTIFICATE_CHECK_SECONDS)
            try:
                await asyncio.to_thread(check_certificate, platform, service)
            except Exception:  # noqa: BLE001 - as above; the cause is logged
                log.exception("the TSA certificate check failed")

    tasks.append(certificate_check)

    def ready() -> None:
        credentials = service.credentials
        if credentials is None or credentials.key_id is None:
            raise TSAUnavailable("the TSA has no valid certificate", detail_zh="时间戳服务没有有效证书")
        if not service.clock_healthy():
            reason = monitor.status.reason if monitor is not None else "unknown"
            raise ClockUnavailable(f"the TSA clock is not trusted: {reason}", detail_zh="时间戳时钟未同步")
        platform.keystore.sign(credentials.key_id, b"hengxin tsa readiness probe")

    platform.services.setdefault("readiness_probes", {})["tsa"] = ready


def init_hook(platform: Platform, details: dict[str, Any]) -> dict[str, Any]:
    """Issue the TSA certificate (if there is no valid one) and report its fingerprint."""
    from api.platform import SYSTEM_ACTOR

    if _ca_of(platform) is None:
        return {}
    info = ensure_certificate(platform, actor=SYSTEM_ACTOR)
    service = service_of(platform)
    if service is not None and service.credentials is None:
        service.install(credentials_for(platform, info))
    return {"TSA certificate fingerprint (SHA-256)": info.fingerprint_sha256}


def router() -> APIRouter:
    from api.routes.timestamp import router as timestamp_router

    return timestamp_router


def protocol_endpoints() -> dict[tuple[str, str], Any]:
    """``POST /tsa`` as a plain ASGI handler, for the application's protocol dispatcher (see the route module)."""
    from api.routes.timestamp import PROTOCOL_ENDPOINTS

    return PROTOCOL_ENDPOINTS


def __getattr__(name: str) -> Any:
    # The CLI group is imported lazily: api.cli imports this module while it is itself being imported.
    if name == "cli":
        from api.cli_timestamp import app

        return app
    raise AttributeError(name)
