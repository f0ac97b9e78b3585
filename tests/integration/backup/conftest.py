"""A real, initialised platform with backup jobs over real restic repositories (copies of the session templates)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.platform import Platform, initialise, open_platform
from backup.service import BackupService
from tests.fixtures.restic import ResticRepository
from tests.helpers import make_settings

NO_RETENTION: dict[str, Any] = {}


@dataclass
class BackupWorld:
    """A platform with a primary and a copy repository configured as ``primary`` and ``offsite``."""

    platform: Platform
    primary: ResticRepository
    offsite: ResticRepository
    base: Path

    @property
    def service(self) -> BackupService:
        service = self.platform.services["backup"]
        assert isinstance(service, BackupService)
        return service


def add_audit_records(platform: Platform, count: int = 3) -> None:
    with platform.transaction() as session:
        for number in range(count):
            platform.require_audit().append(
                session, actor="test", action="test.event", target=f"thing:{number}", details={"n": number}
            )


@pytest.fixture
def make_backup_world(
    make_restic_repository: Callable[..., ResticRepository], tmp_path: Path
) -> Iterator[Callable[..., BackupWorld]]:
    """Factory: ``make(database_url="", job={...overrides}, backup={...overrides}, alerts={...})``."""
    opened: list[Platform] = []

    def make(
        database_url: str = "",
        *,
        job: dict[str, Any] | None = None,
        backup: dict[str, Any] | None = None,
        alerts: dict[str, Any] | None = None,
        primary_url: str | None = None,
        primary_options: dict[str, str] | None = None,
        copies: bool = True,
    ) -> BackupWorld:
        primary = make_restic_repository("primary")
        offsite = make_restic_repository("secondary")
        base = tmp_path / f"world-{len(opened)}"
        repositories: list[dict[str, Any]] = [
            {
                "name": "primary",
                "url": primary_url or str(primary.path),
                "password_secret": "repo-primary",
                "options": primary_options or {},
            }
        ]
        if copies:
            repositories.append(
                {"name": "offsite", "url": str(offsite.path), "password_secret": "repo-offsite", "role": "copy"}
            )
        job_settings: dict[str, Any] = {"name": "nightly", "repository": "primary", "retention": NO_RETENTION}
        job_settings.update(job or {})
        backup_settings: dict[str, Any] = {
            "repositories": repositories,
            "jobs": [job_settings],
            "state_dir": str(base / "state"),
            "restic_binary": primary.binary,
        }
        backup_settings.update(backup or {})
        sections: dict[str, Any] = {"backup": backup_settings}
        if alerts:
            sections["alerts"] = alerts
        settings = make_settings(base / "var", database_url, **sections)
        initialise(settings)
        platform = open_platform(settings)
        opened.append(platform)
        platform.secrets.put("repo-primary", primary.password)
        platform.secrets.put("repo-offsite", offsite.password)
        add_audit_records(platform)
        return BackupWorld(platform, primary, offsite, base)

    yield make
    for platform in opened:
        platform.close()


@pytest.fixture
def backup_world(make_backup_world: Callable[..., BackupWorld]) -> BackupWorld:
    return make_backup_world()
