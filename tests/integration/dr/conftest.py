"""A real platform with issued, revoked and signed material, backed up with the real restic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ca.service import CAService, IssueRequest
from tests.integration.backup.conftest import BackupWorld, make_backup_world  # noqa: F401 - fixture re-export


def add_material(world: BackupWorld) -> dict[str, Any]:
    """Issue two certificates, revoke one, publish the CRLs, take a timestamp: the material the drill probes."""
    platform = world.platform
    ca = platform.services["ca"]
    assert isinstance(ca, CAService)
    issued = []
    for number, name in enumerate(("张三", "Li Si")):
        result = ca.issue(
            IssueRequest(profile="dr-probe", key_mode="custodial", owner=f"user:test{number}", subject={"CN": name}),
            actor="test",
        )
        issued.append(result.certificate)
    ca.revoke(issued[1].id, actor="test", reason="keyCompromise")
    for info in ca.list_cas():
        ca.publish_crl(info.name)
    return {"revoked_serial": issued[1].serial_hex}


@pytest.fixture
def drill_world(make_backup_world: Callable[..., BackupWorld]) -> Callable[..., BackupWorld]:  # noqa: F811
    def make(**dr: Any) -> BackupWorld:
        world = make_backup_world(copies=False, backup={"scheduler": False})
        add_material(world)
        outcome = world.service.run_backup("nightly", trigger="cli", actor="test")
        assert outcome.error is None, outcome.error
        settings = world.platform.settings
        for key, value in dr.items():
            setattr(settings.dr, key, value)
        return world

    return make
