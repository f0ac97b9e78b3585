"""Composition of the backup package: migrations, the core backup sources, the service, scheduler, routes, CLI.

Other components add their own sources (an LDIF export, TSA records ...) from
their ``open_hook``; the registry is created by whichever hook runs first::

    from backup.sources import CommandSource, SourceRegistry

    registry = platform.services.setdefault("backup_sources", SourceRegistry())
    registry.register(CommandSource("ldap", ["/usr/sbin/slapcat", "-n", "1"], "directory.ldif"))

The service looks the sources up when a job runs, so the order of the hooks
does not matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import backup

if TYPE_CHECKING:
    from fastapi import APIRouter

    from api.platform import Platform

MIGRATIONS = Path(backup.__file__).parent / "migrations"
CLI_NAME = "backup"


def open_hook(platform: Platform) -> None:
    """Register the core sources and build the backup service (and its scheduler) into ``platform.services``."""
    from backup.scheduler import BackupScheduler
    from backup.service import BackupService
    from backup.sources import (
        AuditSource,
        ConfigSource,
        DatabaseSource,
        KeyStoreSource,
        PathsSource,
        SourceRegistry,
    )
    from core.config import config_path_of

    settings = platform.settings
    audit = platform.require_audit()
    registry: SourceRegistry = platform.services.setdefault("backup_sources", SourceRegistry())
    password_secret = settings.database.password_secret

    def database_password() -> str | None:
        return platform.secrets.get(password_secret) if password_secret else None

    core_sources: list[Any] = [
        AuditSource(audit, platform.sessions, segments_dir=settings.audit_export_dir),
        DatabaseSource(
            settings.database_admin_url,
            password=database_password,
            pg_dump_binary=settings.backup.pg_dump_binary,
        ),
        KeyStoreSource(platform.keystore, settings.key_directory if settings.keys.backend == "file" else None),
        ConfigSource(config_path_of(settings), lambda: settings.model_dump(mode="json")),
        PathsSource(settings.backup.extra_paths),
    ]
    for source in core_sources:
        if source.name not in registry:
            registry.register(source)
    service = BackupService(
        settings,
        sessions=platform.sessions,
        audit=audit,
        alerts=platform.alerts,
        secrets=platform.secrets,
        sources=registry,
        clock=platform.clock,
    )
    platform.services["backup"] = service
    if settings.backup.scheduler and service.scheduled():
        scheduler = BackupScheduler(service, clock=platform.clock, interval=settings.backup.scheduler_interval_seconds)
        platform.services.setdefault("background_tasks", []).append(scheduler.run)


def router() -> APIRouter:
    from api.routes.backups import router as backups_router

    return backups_router


def __getattr__(name: str) -> Any:
    # The CLI group is imported lazily: api.cli imports this module while it is itself being imported.
    if name == "cli":
        from api.cli_backup import app

        return app
    raise AttributeError(name)
