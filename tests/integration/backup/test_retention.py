"""Our evaluation of retention policies against the real restic, and its use by the backup service."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from backup.retention import SnapshotTime, apply_policy, parse_time
from tests.fixtures.restic import ResticRepository
from tests.integration.backup.conftest import BackupWorld

# (restic --time, TZ of the restic process): days, ISO weeks, months and a year boundary, two offsets, and
# two snapshots in one hour.
MOMENTS = [
    ("2025-12-28 10:00:00", "UTC"),
    ("2025-12-31 23:30:00", "Asia/Shanghai"),
    ("2026-01-01 00:10:00", "UTC"),
    ("2026-01-01 00:50:00", "UTC"),
    ("2026-01-04 18:00:00", "UTC"),
    ("2026-01-05 07:00:00", "Asia/Shanghai"),
    ("2026-01-05 23:00:00", "UTC"),
    ("2026-01-31 12:00:00", "UTC"),
    ("2026-02-01 01:00:00", "Asia/Shanghai"),
    ("2026-02-09 09:00:00", "UTC"),
]
POLICIES = [
    {"last": 3},
    {"hourly": 4},
    {"daily": 3},
    {"daily": 2, "weekly": 2},
    {"weekly": 3, "monthly": 2},
    {"monthly": 12, "yearly": 3},
    {"last": 1, "daily": 7, "weekly": 5, "monthly": 12},
]


def _restic(repository: ResticRepository, *args: str, zone: str = "UTC") -> str:
    env = {**repository.environment(), "TZ": zone}
    completed = subprocess.run([repository.binary, *args], env=env, capture_output=True, text=True, check=True)
    return completed.stdout


def test_decisions_match_restic_forget_for_every_policy(restic_repository: ResticRepository, tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_text("retention\n")
    for moment, zone in MOMENTS:
        _restic(restic_repository, "backup", "--tag=hengxin", "--tag=job:t", f"--time={moment}", str(source), zone=zone)
    listed = json.loads(_restic(restic_repository, "snapshots", "--json"))
    ours = [SnapshotTime(item["id"], parse_time(item["time"])) for item in listed]
    assert len(ours) == len(MOMENTS)

    for policy in POLICIES:
        flags = [f"--keep-{rule}={count}" for rule, count in policy.items()]
        output = _restic(
            restic_repository, "forget", "--dry-run", "--json", "--group-by=tags", "--tag=hengxin,job:t", *flags
        )
        [group] = json.loads(output[output.index("[") :])
        theirs_kept = {item["id"] for item in group.get("keep") or ()}
        theirs_removed = {item["id"] for item in group.get("remove") or ()}
        kept, removed = apply_policy(ours, policy)
        assert ({s.id for s in kept}, {s.id for s in removed}) == (theirs_kept, theirs_removed), policy


def _forget_calls(record: Path) -> int:
    return sum(1 for line in record.read_text().splitlines() if line == "arg forget") if record.exists() else 0


def test_forget_runs_only_when_the_policy_may_remove_a_snapshot(
    make_backup_world: Callable[..., BackupWorld],
    make_restic_wrapper: Callable[..., Path],
    tmp_path: Path,
) -> None:
    record = tmp_path / "calls.log"
    world = make_backup_world(copies=False, job={"retention": {"keep_daily": 7}})
    world.platform.settings.backup.restic_binary = str(
        make_restic_wrapper(before=f'for a in "$@"; do echo "arg $a" >> {record}; done')
    )
    service = world.service

    first = service.run_backup("nightly")
    assert first.error is None, first.error
    assert _forget_calls(record) == 0  # the job's first snapshot: nothing for the policy to remove
    assert first.record.details["retention"]["primary"] == {"removed": 0, "kept": 1}
    assert first.record.details["retention_decided_without_forget"] == ["primary"]
    [(snapshot_id, _time)] = first.record.details["retained"]["snapshots"]
    assert snapshot_id == first.record.snapshot_id
    # The record says where the run's time went.
    assert set(first.record.details["step_seconds"]) == {"sources", "manifest", "backup", "retention"}
    assert 0 < first.record.details["restic_backup_seconds"] <= first.record.details["step_seconds"]["backup"]

    second = service.run_backup("nightly")  # the same day: keep_daily removes the first snapshot
    assert second.error is None, second.error
    assert _forget_calls(record) == 1
    assert second.record.details["retention"]["primary"] == {"removed": 1, "kept": 1}
    [(kept_id, _time)] = second.record.details["retained"]["snapshots"]
    assert kept_id.startswith(second.record.snapshot_id)
    assert [s.id for s in service.snapshots("primary", job="nightly")] == [kept_id]


def test_an_unknown_snapshot_list_makes_the_next_run_ask_restic(
    make_backup_world: Callable[..., BackupWorld],
    make_restic_wrapper: Callable[..., Path],
    tmp_path: Path,
) -> None:
    world = make_backup_world(copies=False, job={"retention": {"keep_last": 1}})
    service = world.service
    assert service.run_backup("nightly").error is None  # nothing to remove: no forget, the list is recorded
    # The second run's retention step fails: its snapshot exists, but no list is recorded.
    world.platform.settings.backup.restic_binary = str(
        make_restic_wrapper(before='case " $* " in *" forget "*) echo "simulated failure" >&2; exit 1;; esac')
    )
    failing = service.run_backup("nightly")
    assert failing.error is not None and failing.record.snapshot_id is not None
    assert isinstance(failing.record.details["retention"]["primary"], str)
    assert "retained" not in failing.record.details

    world.platform.settings.backup.restic_binary = world.primary.binary
    world.platform.settings.backup.jobs[0].retention.keep_last = 5
    after = service.run_backup("nightly")

    assert after.error is None, after.error
    assert "retention_decided_without_forget" not in after.record.details  # the list was unknown: restic decided
    assert after.record.details["retention"]["primary"] == {"removed": 0, "kept": 3}
    assert len(after.record.details["retained"]["snapshots"]) == 3


def test_a_repository_moved_to_another_location_is_asked_again(
    make_backup_world: Callable[..., BackupWorld], make_restic_repository: Callable[..., ResticRepository]
) -> None:
    world = make_backup_world(copies=False, job={"retention": {"keep_last": 5}})
    service = world.service
    assert service.run_backup("nightly").error is None
    other = make_restic_repository("primary")
    world.platform.settings.backup.repositories[0].url = str(other.path)

    moved = service.run_backup("nightly")

    assert moved.error is None, moved.error
    assert "retention_decided_without_forget" not in moved.record.details
    assert moved.record.details["retained"]["url"] == str(other.path)
    assert moved.record.details["retention"]["primary"] == {"removed": 0, "kept": 1}
