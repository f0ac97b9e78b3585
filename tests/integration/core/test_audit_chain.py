"""The audit chain on SQLite and on a real PostgreSQL server: append, verify, detect tampering."""

import json
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.platform import Platform, initialise, open_platform
from core.errors import AuditChainBroken, AuditTruncated
from core.store import current_revisions
from tests.helpers import make_settings


@pytest.fixture
def platform(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path / "var", database_url, audit={"checkpoint_every": 5})
    initialise(settings)
    platform = open_platform(settings)
    yield platform
    platform.close()


def _append(platform: Platform, count: int, prefix: str = "test") -> None:
    audit = platform.require_audit()
    for index in range(count):
        with platform.transaction() as session:
            audit.append(session, actor="user:张伟", action=f"{prefix}.action", target=f"thing:{index}",
                         source="127.0.0.1", details={"index": index, "note": "中文 ok"})


def _verify(platform: Platform):
    with platform.transaction() as session:
        return platform.require_audit().verify(session)


def _drop_guards(platform: Platform) -> None:
    """What an attacker with database superuser rights does first."""
    with platform.engine.begin() as connection:
        if platform.engine.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_records_no_update"))
            connection.execute(text("DROP TRIGGER audit_records_no_delete"))


def test_migrations_apply_and_chain_verifies(platform: Platform) -> None:
    from api.platform import migration_locations
    from core.store import pending_migrations

    assert current_revisions(platform.engine)
    assert pending_migrations(platform.engine, migration_locations()) == []
    _append(platform, 12)
    report = _verify(platform)
    assert report.head_sequence >= 12 and report.records == report.head_sequence
    assert report.checkpoints >= 2  # every 5 records


def test_update_and_delete_are_refused_by_the_database(platform: Platform) -> None:
    _append(platform, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with platform.engine.begin() as connection:
            connection.execute(text("UPDATE audit_records SET actor = 'mallory' WHERE sequence = 1"))
    with pytest.raises(DBAPIError, match="append-only"):
        with platform.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_records WHERE sequence = 1"))
    _verify(platform)


def test_modified_record_is_named(platform: Platform) -> None:
    _append(platform, 8)
    _drop_guards(platform)
    with platform.engine.begin() as connection:
        connection.execute(text("UPDATE audit_records SET actor = 'mallory' WHERE sequence = 4"))
    with pytest.raises(AuditChainBroken) as caught:
        _verify(platform)
    assert caught.value.extra["sequence"] == 4


def test_modified_and_rehashed_record_breaks_the_next_link(platform: Platform) -> None:
    _append(platform, 8)
    _drop_guards(platform)
    with platform.engine.begin() as connection:
        row = connection.execute(text("SELECT canonical FROM audit_records WHERE sequence = 3")).one()
        document = json.loads(row[0])
        document["actor"] = "mallory"
        import hashlib

        from core.jcs import canonicalize

        canonical = canonicalize(document).decode()
        connection.execute(
            text("UPDATE audit_records SET actor='mallory', canonical=:c, record_hash=:h WHERE sequence = 3"),
            {"c": canonical, "h": hashlib.sha256(canonical.encode()).hexdigest()},
        )
    with pytest.raises(AuditChainBroken) as caught:
        _verify(platform)
    assert caught.value.extra["sequence"] == 4


def test_deleted_record_is_named(platform: Platform) -> None:
    _append(platform, 8)
    _drop_guards(platform)
    with platform.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_records WHERE sequence = 5"))
    with pytest.raises(AuditChainBroken) as caught:
        _verify(platform)
    assert caught.value.extra["sequence"] == 5


def test_inserted_record_is_named(platform: Platform) -> None:
    _append(platform, 6)
    _drop_guards(platform)
    with platform.engine.begin() as connection:
        # Make room at 4 by shifting later records up, then insert a forged record there.
        head = connection.execute(text("SELECT max(sequence) FROM audit_records")).scalar_one()
        for sequence in range(head, 3, -1):
            connection.execute(text("UPDATE audit_records SET sequence = sequence + 1 WHERE sequence = :s"),
                               {"s": sequence})
        row = connection.execute(text("SELECT * FROM audit_records WHERE sequence = 3")).mappings().one()
        forged = dict(row)
        forged.update(sequence=4, actor="mallory", record_hash="f" * 64)
        columns = ", ".join(forged)
        connection.execute(text(f"INSERT INTO audit_records ({columns}) VALUES "
                                f"({', '.join(':' + c for c in forged)})"), forged)
    with pytest.raises(AuditChainBroken) as caught:
        _verify(platform)
    assert caught.value.extra["sequence"] == 4


def test_truncation_after_a_checkpoint_is_reported(platform: Platform) -> None:
    _append(platform, 11)  # checkpoints at 5 and 10 (plus init records)
    with platform.transaction() as session:
        platform.require_audit().checkpoint(session)  # None when the head already has one
    with platform.engine.connect() as connection:
        covered = connection.execute(text("SELECT max(sequence) FROM audit_checkpoints")).scalar_one()
    _drop_guards(platform)
    with platform.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_records WHERE sequence > :s"), {"s": covered - 3})
    with pytest.raises(AuditTruncated) as caught:
        _verify(platform)
    assert caught.value.extra["sequence"] == covered - 2


def test_wholesale_rewrite_fails_the_checkpoint_signature(platform: Platform) -> None:
    _append(platform, 6)
    with platform.engine.begin() as connection:
        connection.execute(text("UPDATE audit_checkpoints SET canonical = replace(canonical, :old, :new)"),
                           {"old": '"sequence":5', "new": '"sequence":4'})
    with pytest.raises(AuditChainBroken, match="invalid signature"):
        _verify(platform)


def _writer(settings_json: str, count: int, name: str) -> None:
    from core.config import Settings

    settings = Settings.model_validate_json(settings_json)
    platform = open_platform(settings)
    try:
        _append(platform, count, prefix=name)
    finally:
        platform.close()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_two_writer_processes_keep_one_chain(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "var", database_url, audit={"checkpoint_every": 7})
    initialise(settings)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(settings.model_dump_json(), 60, f"w{i}")) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    platform = open_platform(settings)
    try:
        report = _verify(platform)
        with platform.engine.connect() as connection:
            actions = connection.execute(text("SELECT action, count(*) FROM audit_records GROUP BY action")).all()
    finally:
        platform.close()
    counts = dict(actions)
    assert counts["w0.action"] == 60 and counts["w1.action"] == 60
    assert report.records == report.head_sequence


def test_prune_exports_signed_segment_then_deletes(tmp_path: Path, database_url: str) -> None:
    import datetime as dt

    from core.clock import FrozenClock

    clock = FrozenClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    settings = make_settings(tmp_path / "var", database_url)
    initialise(settings, clock=clock)
    platform = open_platform(settings, clock=clock)
    try:
        _append(platform, 5, prefix="old")
        clock.advance(days=200)
        _append(platform, 3, prefix="new")
        with platform.transaction() as session:
            segment = platform.require_audit().prune(session, retention_days=180,
                                                     export_dir=settings.audit_export_dir)
        assert segment is not None
        exported = (settings.audit_export_dir / segment["file"]).read_text().splitlines()
        assert len(exported) == segment["last_sequence"] - segment["first_sequence"] + 1
        signature = json.loads((settings.audit_export_dir / f"{segment['file']}.sig.json").read_text())
        platform.require_audit().verify_checkpoint_signature(signature["canonical"], signature["signature"])
        report = _verify(platform)
        assert report.first_sequence == segment["last_sequence"] + 1
        with platform.engine.connect() as connection:
            left = connection.execute(text("SELECT count(*) FROM audit_records WHERE action = 'old.action'")).scalar()
        assert left == 0
    finally:
        platform.close()


def test_postgres_application_role_cannot_update_or_delete_audit_rows(tmp_path: Path, postgres_cluster) -> None:
    from sqlalchemy import create_engine

    from core.store.roles import grant_application_role

    database = postgres_cluster.create_database()
    settings = make_settings(tmp_path / "var", postgres_cluster.url(database))
    initialise(settings)
    postgres_cluster.psql("DO $$ BEGIN CREATE ROLE hengxin_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; "
                          "END $$")
    owner = create_engine(postgres_cluster.url(database))
    grant_application_role(owner, "hengxin_app")
    # Even with the trigger guard gone, the role lacks the privilege.
    with owner.begin() as connection:
        connection.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
    owner.dispose()
    app_settings = make_settings(tmp_path / "var", postgres_cluster.url(database, user="hengxin_app"))
    platform = open_platform(app_settings)
    try:
        _append(platform, 3)  # INSERT is allowed
        for statement in ("UPDATE audit_records SET actor = 'x'", "DELETE FROM audit_records",
                          "TRUNCATE audit_records"):
            with pytest.raises(DBAPIError, match="permission denied"):
                with platform.engine.begin() as connection:
                    connection.execute(text(statement))
        _verify(platform)
    finally:
        platform.close()
