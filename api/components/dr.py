"""Composition of the disaster-recovery drills: migrations, the drill service, its scheduler, routes, CLI.

``open_hook`` builds :class:`dr.drill.DrillService` into ``platform.services["dr"]``
with the pieces ``dr/`` may not import itself: the report renderer
(:mod:`dr.report`), the report signer (the platform's ``organisation-seal``
certificate with a custodial key, signed PAdES through ``signing/`` and
timestamped by the in-process TSA) and the scheduler.  ``init_hook`` issues the
seal certificate on ``hengxin init``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dr

if TYPE_CHECKING:
    from fastapi import APIRouter

    from api.platform import Platform
    from ca.store import CertificateInfo
    from dr.drill import DrillService

MIGRATIONS = Path(dr.__file__).parent / "migrations"
CLI_NAME = "dr"

SEAL_OWNER = "platform:seal"
SEAL_PROFILE = "organisation-seal"

log = logging.getLogger("hengxin.dr")


def current_seal(platform: Platform) -> CertificateInfo | None:
    """The newest valid seal certificate of the platform, or ``None``."""
    from ca.service import CAService, CertificateQuery

    ca = platform.services.get("ca")
    if not isinstance(ca, CAService):
        return None
    now = platform.clock()
    found = ca.search(CertificateQuery(owner=SEAL_OWNER, profile=SEAL_PROFILE, status="issued", limit=1000))
    valid = [c for c in found if c.key_id and c.der and c.not_before <= now < c.not_after]
    return max(valid, key=lambda c: c.id) if valid else None


def ensure_seal(platform: Platform, *, actor: str) -> CertificateInfo | None:
    """The platform's seal certificate, issued with a new custodial key when there is none."""
    from ca.service import CAService, IssueRequest

    current = current_seal(platform)
    if current is not None:
        return current
    ca = platform.services.get("ca")
    if not isinstance(ca, CAService):
        return None
    settings = platform.settings
    result = ca.issue(
        IssueRequest(
            profile=SEAL_PROFILE,
            key_mode="custodial",
            owner=SEAL_OWNER,
            subject={
                "CN": f"{settings.ca.organisation} {settings.instance.name} seal"[:64],
                "O": settings.ca.organisation,
            },
        ),
        actor=actor,
    )
    return result.certificate


class SealReportSigner:
    """Signs drill reports PAdES with the platform seal: B-LT when the CA answers revocation in-process, else B-T."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def sign_report(self, pdf: bytes) -> tuple[bytes, str]:
        from asn1crypto import x509 as asn1_x509

        from ca.service import CAService
        from core.keys.pyhanko_signer import KeyStoreSigner
        from signing.interfaces import ProviderTimeStamper, RevocationInfo
        from signing.pdf import sign_pdf

        platform = self.platform
        seal = ensure_seal(platform, actor="dr")
        ca = platform.services.get("ca")
        tsa = platform.services.get("tsa")
        if seal is None or not isinstance(ca, CAService) or seal.key_id is None or seal.der is None:
            raise RuntimeError("no seal certificate: the CA component is not available")
        chain = [asn1_x509.Certificate.load(c.certificate_der) for c in ca.chain(seal.ca)]
        signer = KeyStoreSigner(platform.keystore, seal.key_id, asn1_x509.Certificate.load(seal.der), chain)
        stamper = (
            ProviderTimeStamper(lambda request: tsa.stamp(request, actor="dr").der) if tsa is not None else None
        )

        class CRLs:
            def revocation_info(self, certificates: Any) -> RevocationInfo:
                crls = []
                for info in ca.list_cas():
                    try:
                        crls.append(ca.latest_crl(info.name).der)
                    except Exception:  # noqa: BLE001, S112 - a CA without a CRL yet is simply not covered
                        continue
                return RevocationInfo(crls=tuple(crls))

        options: dict[str, Any] = {"reason": "Disaster-recovery drill record", "timestamper": stamper}
        try:
            return sign_pdf(pdf, signer, level="B-LT", revocation=CRLs(), **options), "B-LT"
        except Exception:  # noqa: BLE001 - fall back to B-T and say so in the report
            log.warning("B-LT signing of the drill report failed; signing B-T", exc_info=True)
            return sign_pdf(pdf, signer, level="B-T", **options), "B-T"


def restored_seal_certificate(database_url: str, password: str | None, *, now: dt.datetime) -> str | None:
    """The id of the newest valid platform seal certificate with a custodial key in a restored database.

    The drill names it in the sandbox's ``[[signing.seals]]`` so the signature probe can sign with it;
    the sandbox itself checks it again before signing.
    """
    from sqlalchemy import select

    from ca.models import CertificateRow
    from core.store import build_engine, session_factory, transaction

    engine = build_engine(database_url, pool_size=1, password=password)
    try:
        with transaction(session_factory(engine)) as session:
            rows = session.scalars(
                select(CertificateRow)
                .where(
                    CertificateRow.owner == SEAL_OWNER,
                    CertificateRow.profile == SEAL_PROFILE,
                    CertificateRow.status == "issued",
                    CertificateRow.key_id.is_not(None),
                )
                .order_by(CertificateRow.id.desc())
            )
            for row in rows:
                if row.der is not None and row.not_before <= now < row.not_after:
                    return str(row.id)
    finally:
        engine.dispose()
    return None


def build_service(platform: Platform) -> DrillService:
    from backup.service import BackupService
    from dr.drill import DrillService
    from dr.report import render_pdf

    backup = platform.services.get("backup")
    assert isinstance(backup, BackupService)
    return DrillService(
        platform.settings,
        sessions=platform.sessions,
        audit=platform.require_audit(),
        alerts=platform.alerts,
        secrets=platform.secrets,
        backup=backup,
        clock=platform.clock,
        report_renderer=render_pdf,
        report_signer=SealReportSigner(platform) if platform.services.get("ca") is not None else None,
        seal_locator=(
            (lambda url, password: restored_seal_certificate(url, password, now=platform.clock()))
            if platform.services.get("ca") is not None
            else None
        ),
        certificate_registrar=_probe_registrar(platform) if platform.services.get("ca") is not None else None,
    )


def _probe_registrar(platform: Platform) -> Any:
    """Record a sandbox-issued probe certificate in the production CA as issued and immediately revoked."""
    from ca.external import record_revoked_external

    def register(certificate: Any, ca: str, drill_id: str) -> dict[str, Any]:
        with platform.transaction() as session:
            recorded = record_revoked_external(
                session, platform.require_audit(), platform.clock, certificate, ca,
                profile="dr-probe", owner=f"dr:{drill_id}", actor="dr", note=f"disaster-recovery drill {drill_id}",
            )
        return dataclasses.asdict(recorded)

    return register


def open_hook(platform: Platform) -> None:
    """Build the drill service and, with ``[dr] schedule``, the drill scheduler and the overdue check."""
    if platform.services.get("backup") is None:
        return
    service = build_service(platform)
    platform.services["dr"] = service
    settings = platform.settings.dr
    if service.schedule is not None and settings.scheduler:
        schedule = service.schedule

        async def drill_scheduler() -> None:
            next_slot = schedule.next_after(platform.clock(), platform.settings.zone)
            while True:
                await asyncio.sleep(settings.scheduler_interval_seconds)
                now = platform.clock()
                if now < next_slot:
                    continue
                slot, next_slot = next_slot, schedule.next_after(now, platform.settings.zone)
                try:
                    await asyncio.to_thread(service.run_scheduled, slot)
                    await asyncio.to_thread(service.check_overdue)
                except Exception:  # noqa: BLE001 - the loop must survive; the cause is logged
                    log.exception("scheduled drill failed")

        platform.services.setdefault("background_tasks", []).append(drill_scheduler)


def init_hook(platform: Platform, details: dict[str, Any]) -> dict[str, Any]:
    """Issue the platform's seal certificate (signs the drill reports)."""
    from api.platform import SYSTEM_ACTOR

    seal = ensure_seal(platform, actor=SYSTEM_ACTOR)
    return {"report seal fingerprint (SHA-256)": seal.fingerprint_sha256} if seal is not None else {}


def router() -> APIRouter:
    from api.routes.drills import router as drills_router

    return drills_router


def __getattr__(name: str) -> Any:
    if name == "cli":
        from api.cli_dr import app

        return app
    raise AttributeError(name)
