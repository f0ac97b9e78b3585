"""A drill of a platform on PostgreSQL: pg_restore into a scratch database that is dropped at teardown."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from core.store import build_engine
from tests.fixtures.postgres import PostgresCluster
from tests.integration.backup.conftest import BackupWorld
from tests.integration.dr.conftest import add_material
from tests.integration.dr.test_drill import assert_nothing_left, service_of, steps


def test_drill_on_postgresql_passes_and_drops_its_scratch_database(
    make_backup_world: Callable[..., BackupWorld], postgres_cluster: PostgresCluster
) -> None:
    world = make_backup_world(
        postgres_cluster.url(postgres_cluster.create_database()), copies=False, backup={"scheduler": False}
    )
    add_material(world)
    outcome = world.service.run_backup("nightly", trigger="cli", actor="test")
    assert outcome.error is None, outcome.error
    world.platform.settings.dr.check_read_data = False
    result = service_of(world).run_drill()
    assert result.result == "passed", (result.reason, result.report["steps"])
    status = steps(result)
    for name in ("restore_database", "probe:certificate", "probe:signature", "probe:login", "teardown"):
        assert status[name] == "passed", (name, result.report["steps"])
    assert_nothing_left(result)
    engine = build_engine(postgres_cluster.url(), pool_size=1)
    try:
        with engine.connect() as connection:
            names = connection.execute(text("SELECT datname FROM pg_database")).scalars().all()
    finally:
        engine.dispose()
    assert not [name for name in names if name.startswith("hengxin_dr_")], names
    print(f"measured RTO on PostgreSQL {result.rto_seconds} s")
