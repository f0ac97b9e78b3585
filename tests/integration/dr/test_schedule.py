"""Scheduled drills run once per slot; drills that do not pass, and long gaps, raise alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from dr.drill import DrillService
from tests.integration.backup.conftest import BackupWorld


def _alerts(world: BackupWorld) -> list[str]:
    return [alert.name for alert in world.platform.alerts.history]


def test_a_scheduled_slot_runs_once_and_what_does_not_pass_is_alerted(
    drill_world: Callable[..., BackupWorld],
) -> None:
    world = drill_world()
    # A wrong repository password makes the drill end quickly as "could not run".
    world.platform.secrets.put("repo-primary", "not the password")
    service = world.platform.services["dr"]
    assert isinstance(service, DrillService)
    slot = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
    first = service.run_scheduled(slot)
    assert first is not None and first.result == "could_not_run"
    assert "dr.drill_could_not_run" in _alerts(world)
    # The slot is claimed in the database: another tick, or another node, does not run it again.
    assert service.run_scheduled(slot) is None
    assert len(service.list_drills()) == 1
    # No drill has passed: the platform is overdue, and says so.
    assert service.check_overdue() is True
    assert "dr.overdue" in _alerts(world)
