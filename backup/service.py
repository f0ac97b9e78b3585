"""The backup service: runs jobs, copies, retention and checks, and keeps the run history.

One :class:`BackupService` per process, built by the composition root from
the settings (``[backup]``), the platform's sessions, audit log, alerts,
secret store and the registry of backup sources.

A backup run of a job:

1. takes the job's database lease (one run of a job at a time across nodes);
2. empties the job's staging directory and lets each source prepare its data
   in a subdirectory of it (:mod:`backup.sources`);
3. refuses to continue if any root would put the secret store in the backup;
4. builds the manifest over every root (reusing the hashes of unchanged files
   from the previous run's manifest), with the row counts and the audit head,
   and writes it to ``<staging>/hengxin-manifest.json``;
5. ``restic backup`` of every root plus the manifest into the primary repository;
6. ``forget --prune`` with the job's retention in the primary repository;
7. ``restic copy`` of the job's snapshots to each copy repository, then the same
   retention there;
8. writes the run record and its audit record in one transaction, and raises an
   alert when the run failed.

Every failure (a restic error, a missing source, a wrong password, a source
plugin that breaks) ends as a *failed* run record with the error's code and
message, plus an alert; a run is recorded as a success only when every step
succeeded.  The service never passes a repository password in argv: restic
gets the path of a 0600 file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backup.errors import (
    BackupConfigurationError,
    BackupError,
    JobNotFound,
    JobRunning,
    RepositoryExists,
    SecretsInBackup,
    SourceFailed,
)
from backup.leases import JobLeases, Lease, LeaseKeeper
from backup.manifest import Manifest, build_manifest, restored_path, verify_tree
from backup.metrics import JobMetrics, render_metrics
from backup.models import BackupRunRow
from backup.restic import ForgetResult, ProgressCallback, Restic, Snapshot
from backup.retention import SnapshotTime, keeps_all_with_new
from backup.retention import parse_time as parse_retention_time
from backup.schedule import CronSchedule, read_data_subset
from backup.sources import SourceRegistry
from core.alerts import AlertChannel
from core.audit import AuditLog
from core.clock import Clock, isoformat_utc, utc_now
from core.config import BackupJobSettings, BackupRepositorySettings, Settings
from core.errors import HengxinError
from core.secrets import SecretStore, write_private_file
from core.store import transaction

logger = logging.getLogger("hengxin.backup")

MANIFEST_NAME = "hengxin-manifest.json"
SNAPSHOT_TAG = "hengxin"
BACKUP = "backup"
CHECK = "check"
SUCCESS = "success"
FAILED = "failed"
_RETAINED_LOOKBACK = 20
"""How many of a job's latest runs are searched for the snapshot list its last retention step recorded."""
_FAILED_BEFORE_RESTIC = frozenset(
    {
        "backup.source_missing",
        "backup.source_failed",
        "backup.secrets_included",
        "backup.configuration_invalid",
        "backup.job_running",
        "secrets.not_found",
    }
)
"""Error codes of runs that failed before restic could make a snapshot."""


def job_tag(job: str) -> str:
    """The restic tag every snapshot of ``job`` carries (with :data:`SNAPSHOT_TAG`)."""
    return f"job:{job}"


def node_name() -> str:
    """This process, as recorded in leases and run records: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunRecord:
    """One finished run, as the history table holds it; times are aware UTC."""

    id: int
    job: str
    kind: str
    trigger: str
    actor: str
    node: str
    repository: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_seconds: float
    result: str
    snapshot_id: str | None
    files_total: int
    files_new: int
    files_changed: int
    bytes_processed: int
    bytes_added: int
    manifest_sha256: str | None
    details: Mapping[str, Any]
    error_code: str | None
    error_message: str | None

    @property
    def succeeded(self) -> bool:
        return self.result == SUCCESS

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["started_at"] = isoformat_utc(self.started_at)
        data["finished_at"] = isoformat_utc(self.finished_at)
        data["details"] = dict(self.details)
        return data


@dataclass(frozen=True)
class RunOutcome:
    """A run's record and, when it failed, the error that failed it (for the CLI's exit code)."""

    record: RunRecord
    error: HengxinError | None


@dataclass(frozen=True)
class RepositoryView:
    """A repository as the API and CLI show it: no password, no secret values."""

    name: str
    role: str
    url: str


@dataclass(frozen=True)
class JobStatus:
    """A configured job with its schedule and latest runs."""

    name: str
    repository: str
    copy_to: tuple[str, ...]
    sources: tuple[str, ...]
    schedule: str
    next_run_at: dt.datetime | None
    check_schedule: str
    next_check_at: dt.datetime | None
    read_data_subset_days: int
    retention: Mapping[str, int]
    running_on: str | None
    last_run: RunRecord | None
    last_success: RunRecord | None
    last_check: RunRecord | None


@dataclass(frozen=True)
class _BackupResult:
    snapshot_id: str | None = None
    files_total: int = 0
    files_new: int = 0
    files_changed: int = 0
    bytes_processed: int = 0
    bytes_added: int = 0
    manifest_sha256: str | None = None


class BackupService:
    """Runs the configured jobs; see the module documentation for what a run does."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        alerts: AlertChannel,
        secrets: SecretStore,
        sources: SourceRegistry,
        clock: Clock = utc_now,
        node: str | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.backup
        self.sessions = sessions
        self.audit = audit
        self.alerts = alerts
        self.secrets = secrets
        self.sources = sources
        self.clock = clock
        self.node = node or node_name()
        self.zone = settings.zone
        self.state_dir = self.config.state_dir or settings.data_dir / "backup"
        self.leases = JobLeases(sessions, self.node, clock=clock)
        self.lease_ttl = dt.timedelta(seconds=self.config.lease_seconds)
        self._jobs = {job.name: job for job in self.config.jobs}
        self._repositories = {repository.name: repository for repository in self.config.repositories}
        self._schedules: dict[tuple[str, str], CronSchedule] = {}
        for job in self.config.jobs:
            if job.schedule:
                self._schedules[(BACKUP, job.name)] = CronSchedule.parse(job.schedule)
            if job.check_schedule:
                self._schedules[(CHECK, job.name)] = CronSchedule.parse(job.check_schedule)
        for repository in self.config.repositories:
            _check_location(repository)
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        self._manifests: dict[str, tuple[tuple[int, int, int, int], Manifest]] = {}

    # ------------------------------------------------------------------ configuration

    def job(self, name: str) -> BackupJobSettings:
        """The job's settings; raises :class:`JobNotFound`."""
        job = self._jobs.get(name)
        if job is None:
            raise JobNotFound(f"no backup job named {name!r}", detail_zh=f"没有名为 {name!r} 的备份任务", job=name)
        return job

    def jobs(self) -> list[BackupJobSettings]:
        return list(self.config.jobs)

    def schedule(self, kind: str, job: str) -> CronSchedule | None:
        return self._schedules.get((kind, job))

    def scheduled(self) -> list[tuple[str, str, CronSchedule]]:
        """Every (kind, job, schedule) the scheduler watches."""
        return [(kind, job, schedule) for (kind, job), schedule in self._schedules.items()]

    def repositories(self) -> list[RepositoryView]:
        from backup.restic import redact_url_credentials

        return [RepositoryView(r.name, r.role, redact_url_credentials(r.url)) for r in self.config.repositories]

    def copy_targets(self, job: BackupJobSettings) -> list[str]:
        if job.copy_to is not None:
            return list(job.copy_to)
        return [r.name for r in self.config.repositories if r.role == "copy"]

    @contextlib.contextmanager
    def repository(self, name: str, *, timeout: float | None = None) -> Iterator[Restic]:
        """A restic adapter for the named repository, with its password in a 0600 file.

        With the file secret store the secret's own file is used; other stores
        get a temporary 0600 file in the state directory, removed afterwards.
        Raises :class:`BackupConfigurationError` for an unknown repository and
        the secret store's errors for a missing secret.
        """
        config = self._repositories.get(name)
        if config is None:
            raise BackupConfigurationError(f"no backup repository named {name!r}", repository=name)
        extra_env = _parse_env(self.secrets.get(config.extra_env_secret)) if config.extra_env_secret else {}
        with self._password_file(config.password_secret) as password_file:
            yield Restic(
                config.url,
                password_file,
                binary=self.config.restic_binary,
                cache_dir=self.state_dir / "cache",
                extra_env=extra_env,
                options=config.options,
                timeout=timeout or max((j.timeout_seconds for j in self.config.jobs), default=6 * 3600.0),
            )

    @contextlib.contextmanager
    def _password_file(self, secret: str) -> Iterator[Path]:
        reference = self.secrets.reference(secret)
        if reference is not None:
            yield reference
            return
        runtime = self._private_dir("tmp")
        descriptor, name = tempfile.mkstemp(prefix="repository-", dir=runtime)
        path = Path(name)
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(self.secrets.get(secret) + "\n")
            yield path
        finally:
            path.unlink(missing_ok=True)

    def _private_dir(self, *parts: str) -> Path:
        path = self.state_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for parent in (self.state_dir, path):
            if parent.stat().st_mode & 0o077:
                parent.chmod(0o700)
        return path

    # ------------------------------------------------------------------ repositories

    def init_repositories(self, *, create_passwords: bool = False, actor: str = "system") -> dict[str, str]:
        """``restic init`` every configured repository; returns name -> ``created`` or ``exists``.

        With ``create_passwords`` a missing password secret is first created
        with 256 random bits (the operator must escrow it: see docs/backup.md).
        Raises the first error other than "already exists".
        """
        results: dict[str, str] = {}
        for config in self.config.repositories:
            if create_passwords and not self.secrets.exists(config.password_secret):
                self.secrets.ensure_random(config.password_secret, 32)
                results[f"{config.name}.password"] = "generated"
            with self.repository(config.name, timeout=600) as restic:
                try:
                    restic.init()
                    results[config.name] = "created"
                except RepositoryExists:
                    results[config.name] = "exists"
            if results[config.name] == "created":
                with transaction(self.sessions) as session:
                    self.audit.append(
                        session,
                        actor=actor,
                        action="backup.repository_init",
                        target=f"backup-repository:{config.name}",
                        details={"role": config.role},
                    )
        return results

    def snapshots(self, repository: str, *, job: str | None = None, no_lock: bool = False) -> list[Snapshot]:
        """The Hengxin snapshots in a repository (of one job when given), oldest first.

        ``no_lock``: list without restic's lock (see :meth:`Restic.snapshots`).
        """
        tags = [SNAPSHOT_TAG, job_tag(job)] if job else [SNAPSHOT_TAG]
        with self.repository(repository) as restic:
            return restic.snapshots(tags=tags, no_lock=no_lock)

    # ------------------------------------------------------------------ leases

    def _take_lease(self, job: str, wait_seconds: float = 0.0) -> Lease:
        deadline = time.monotonic() + wait_seconds
        while True:
            lease = self.leases.acquire(f"backup:{job}", self.lease_ttl)
            if lease is not None:
                return lease
            if time.monotonic() >= deadline:
                state = self.leases.state(f"backup:{job}")
                holder = state.holder if state is not None else "unknown"
                raise JobRunning(
                    f"backup job {job!r} is already running on {holder}",
                    detail_zh=f"备份任务 {job!r} 正在 {holder} 上运行",
                    job=job,
                    holder=holder,
                )
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))

    def running_on(self, job: str) -> str | None:
        state = self.leases.state(f"backup:{job}")
        if state is None or not state.held(self.clock()):
            return None
        return state.holder

    # ------------------------------------------------------------------ backup

    def run_backup(
        self,
        job_name: str,
        *,
        trigger: str = "cli",
        actor: str = "system",
        progress: ProgressCallback | None = None,
        lease_wait: float = 0.0,
    ) -> RunOutcome:
        """Run one backup of ``job_name`` now and return its recorded outcome.

        Raises :class:`JobNotFound` for an unknown job and :class:`JobRunning`
        when the job's lease is held (no record is written then); every other
        failure is returned as a failed record with its error.
        """
        job = self.job(job_name)
        lease = self._take_lease(job.name, lease_wait)
        return self._backup_holding(job, lease, trigger, actor, progress)

    def start_backup(self, job_name: str, *, trigger: str = "api", actor: str = "system") -> threading.Thread:
        """Take the job's lease now and run the backup on a background thread (for the API).

        Raises :class:`JobNotFound` and :class:`JobRunning` before starting.
        """
        job = self.job(job_name)
        lease = self._take_lease(job.name)

        def work() -> None:
            try:
                self._backup_holding(job, lease, trigger, actor, None)
            finally:
                with self._threads_lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=work, name=f"backup-{job.name}", daemon=True)
        with self._threads_lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def _backup_holding(
        self,
        job: BackupJobSettings,
        lease: Lease,
        trigger: str,
        actor: str,
        progress: ProgressCallback | None,
    ) -> RunOutcome:
        started_at = self.clock()
        started = time.monotonic()
        details: dict[str, Any] = {}
        result = _BackupResult()
        error: HengxinError | None = None
        logger.info("backup %s started (%s)", job.name, trigger, extra={"backup_job": job.name})
        try:
            with LeaseKeeper(self.leases, lease, self.lease_ttl):
                result, error = self._backup(job, details, progress)
        except HengxinError as e:
            error = e
        except Exception as e:  # noqa: BLE001 - every failure must end as a failed record, never as silence
            logger.exception("backup %s failed unexpectedly", job.name)
            error = BackupError(f"unexpected error during the backup: {type(e).__name__}")
        finally:
            self._clean_staging(job.name)
        record = self._finish(
            kind=BACKUP,
            job=job,
            trigger=trigger,
            actor=actor,
            started_at=started_at,
            duration=time.monotonic() - started,
            result=result,
            details=details,
            error=error,
        )
        return RunOutcome(record, error)

    def staging_dir(self, job: str) -> Path:
        """Where the job's sources prepare their data; the manifest is ``<staging>/hengxin-manifest.json``."""
        return self.state_dir / "staging" / job

    def _clean_staging(self, job: str) -> None:
        shutil.rmtree(self.staging_dir(job), ignore_errors=True)

    def _backup(
        self, job: BackupJobSettings, details: dict[str, Any], progress: ProgressCallback | None
    ) -> tuple[_BackupResult, HengxinError | None]:
        """Run the steps of one backup; returns what was made and the first error of a later step.

        A failure before the snapshot exists raises; a failure of retention
        or of a copy is returned with the snapshot's result, so the record
        keeps the snapshot ID although the run counts as failed.
        """
        self._private_dir("staging")
        staging = self.staging_dir(job.name)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)

        roots: dict[str, Path] = {}
        row_counts: dict[str, int] = {}
        sections: dict[str, Any] = {}
        audit_head: tuple[int, str] | None = None
        # Seconds spent in each step, kept in the run record so that an operator sees what a run costs.
        seconds: dict[str, float] = {}
        details["step_seconds"] = seconds
        mark = time.monotonic()
        selected = self.sources.select(job.sources)
        if not selected:
            raise BackupConfigurationError(f"backup job {job.name!r} has no sources", job=job.name)
        for source in selected:
            directory = staging / source.name
            directory.mkdir(mode=0o700)
            try:
                output = source.prepare(directory)
            except HengxinError:
                raise
            except Exception as e:
                logger.exception("backup source %s failed", source.name)
                raise SourceFailed(
                    f"backup source {source.name!r} failed: {type(e).__name__}",
                    detail_zh=f"备份源 {source.name!r} 执行失败",
                    source=source.name,
                ) from e
            for root, path in output.roots.items():
                if root in roots:
                    raise BackupConfigurationError(f"two backup sources both provide the root {root!r}")
                roots[root] = Path(os.path.abspath(path))
            for table, count in output.row_counts.items():
                row_counts[table if table not in row_counts else f"{source.name}.{table}"] = count
            if output.audit_head is not None:
                audit_head = output.audit_head
            sections.update(output.sections)
        self._refuse_secrets(roots)
        mark = _lap(seconds, "sources", mark)

        manifest = build_manifest(roots, self._previous_manifest(job.name), clock=self.clock)
        manifest = manifest.with_row_counts(row_counts)
        if audit_head is not None:
            manifest = manifest.with_audit_head(*audit_head)
        manifest = manifest.with_section(
            "hengxin",
            {
                "instance": self.settings.instance.name,
                "job": job.name,
                "node": self.node,
                "sources": [source.name for source in selected],
                "manifest_path": str(staging / MANIFEST_NAME),
            },
        )
        for name, value in sections.items():
            manifest = manifest.with_section(name, value)
        text = manifest.to_json()
        manifest_path = staging / MANIFEST_NAME
        manifest_path.write_text(text, encoding="utf-8")
        manifest_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        details["manifest_files"] = len(manifest.files)
        mark = _lap(seconds, "manifest", mark)

        tags = [SNAPSHOT_TAG, job_tag(job.name)]
        first_error: HengxinError | None = None
        policy = job.retention.policy()
        known = self._retained_snapshots(job) if policy else None
        with self.repository(job.repository, timeout=job.timeout_seconds) as primary:
            earliest = dt.datetime.now(dt.UTC)
            summary = primary.backup([*roots.values(), manifest_path], tags=tags, progress=progress)
            latest = dt.datetime.now(dt.UTC)
            self._save_manifest(job.name, manifest, text)
            mark = _lap(seconds, "backup", mark)
            details["restic_backup_seconds"] = round(summary.duration, 3)  # restic's own measure of its run
            result = _BackupResult(
                snapshot_id=summary.snapshot_id,
                files_total=summary.total_files_processed,
                files_new=summary.files_new,
                files_changed=summary.files_changed,
                bytes_processed=summary.total_bytes_processed,
                bytes_added=summary.data_added,
                manifest_sha256=manifest_sha256,
            )
            retention: dict[str, Any] = {}
            if policy:
                # restic's snapshot time is taken by restic between `earliest` and `latest` (real time, not the
                # injected clock).  When the known snapshots plus this one are all kept whatever that time was,
                # `forget` would remove nothing: it is not run.
                kept = (
                    keeps_all_with_new(known, summary.snapshot_id, earliest, latest, policy)
                    if known is not None and summary.snapshot_id
                    else None
                )
                try:
                    if kept is None:
                        forgotten = _apply_retention(primary, policy, tags)
                        retention[job.repository] = {"removed": len(forgotten.removed), "kept": len(forgotten.kept)}
                        kept = [
                            SnapshotTime(snapshot, parse_retention_time(moment))
                            for snapshot, moment in zip(forgotten.kept, forgotten.kept_times, strict=True)
                        ]
                    else:
                        retention[job.repository] = {"removed": 0, "kept": len(kept)}
                        details["retention_decided_without_forget"] = [job.repository]
                    details["retained"] = {
                        "repository": job.repository,
                        "url": self._repositories[job.repository].url,
                        "snapshots": [snapshot.to_json() for snapshot in kept],
                    }
                except HengxinError as e:
                    retention[job.repository] = e.code
                    first_error = first_error or _in_repository(e, "retention", job.repository)
                except ValueError:
                    logger.warning("restic printed a snapshot time that cannot be read; the next run runs forget")
            mark = _lap(seconds, "retention", mark)
            copies: dict[str, str] = {}
            for target in self.copy_targets(job):
                try:
                    with self.repository(target, timeout=job.timeout_seconds) as destination:
                        primary.copy(destination, tags=[job_tag(job.name)])
                        copies[target] = "ok"
                        if policy:
                            forgotten = _apply_retention(destination, policy, tags)
                            retention[target] = {"removed": len(forgotten.removed), "kept": len(forgotten.kept)}
                except HengxinError as e:
                    copies.setdefault(target, e.code)
                    retention.setdefault(target, e.code)
                    first_error = first_error or _in_repository(e, "copy", target)
            details["copies"] = copies
            details["retention"] = retention
            if copies:
                _lap(seconds, "copies", mark)
        return result, first_error

    def _retained_snapshots(self, job: BackupJobSettings) -> list[SnapshotTime] | None:
        """The job's snapshots in its primary repository as the run history knows them; None when unknown.

        That is the list the latest run that made a snapshot recorded after its retention step, in the same
        repository at the same location.  Runs that failed before making a snapshot are passed over; a run
        that made one without recording the list (its retention failed) makes the answer unknown.  No run
        at all means no snapshot.  Snapshots made outside the run history (by hand, by another installation,
        by a run killed before it was recorded) are taken into account by the next ``restic forget``, which
        runs as soon as the policy could remove any known snapshot.
        """
        url = self._repositories[job.repository].url
        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(BackupRunRow)
                .where(BackupRunRow.job == job.name, BackupRunRow.kind == BACKUP)
                .order_by(BackupRunRow.id.desc())
                .limit(_RETAINED_LOOKBACK)
            ).all()
            history = [(row.snapshot_id, row.error_code, row.details) for row in rows]
        if not history:
            return []
        for snapshot_id, error_code, text in history:
            try:
                details = json.loads(text or "{}")
            except ValueError:
                details = {}
            retained = details.get("retained") if isinstance(details, dict) else None
            if isinstance(retained, dict):
                if retained.get("repository") != job.repository or retained.get("url") != url:
                    return None
                try:
                    return [SnapshotTime.from_json(item) for item in retained.get("snapshots") or ()]
                except ValueError:
                    return None
            if snapshot_id is not None or error_code not in _FAILED_BEFORE_RESTIC:
                return None
        return None

    def _refuse_secrets(self, roots: Mapping[str, Path]) -> None:
        """Raise :class:`SecretsInBackup` if a root is, contains or lies inside the secret store's directory."""
        if self.settings.secrets.backend != "file":
            return
        secret_dir = Path(os.path.realpath(self.settings.secret_directory))
        for name, path in roots.items():
            real = Path(os.path.realpath(path))
            if real == secret_dir or secret_dir.is_relative_to(real) or real.is_relative_to(secret_dir):
                raise SecretsInBackup(
                    f"backup root {name!r} ({path}) would include the secret store {secret_dir}; secrets are "
                    "deliberately kept out of backups (see docs/backup.md)",
                    detail_zh=f"备份根 {name!r} 将包含机密存储目录，机密不得进入备份",
                    root=name,
                )

    def _manifest_store(self, job: str) -> Path:
        return self._private_dir("manifests") / f"{job}.json"

    def _previous_manifest(self, job: str) -> Manifest | None:
        path = self._manifest_store(job)
        try:
            identity = _file_identity(path)
        except FileNotFoundError:
            return None
        cached = self._manifests.get(job)
        if cached is not None and cached[0] == identity:
            return cached[1]
        try:
            return Manifest.from_json(path.read_bytes())
        except BackupError:
            logger.warning("the previous manifest of %s is unreadable; hashing every file again", job)
            return None

    def _save_manifest(self, job: str, manifest: Manifest, text: str) -> None:
        path = self._manifest_store(job)
        write_private_file(path, text.encode("utf-8"))
        # Kept in memory too: the next run of this process reuses it without parsing the file again, as long
        # as the file is still the one written here.
        self._manifests[job] = (_file_identity(path), manifest)

    # ------------------------------------------------------------------ checks

    def run_check(
        self,
        job_name: str,
        *,
        read_data: bool = False,
        read_data_subset: str | None = None,
        trigger: str = "cli",
        actor: str = "system",
        lease_wait: float = 0.0,
    ) -> RunOutcome:
        """``restic check`` the job's primary and copy repositories and record the outcome.

        ``read_data`` reads every pack back; ``read_data_subset`` ("n/t", "x%")
        reads part of them.  Raises :class:`JobNotFound` and
        :class:`JobRunning`; other failures are returned as a failed record.
        """
        job = self.job(job_name)
        lease = self._take_lease(job.name, lease_wait)
        started_at = self.clock()
        started = time.monotonic()
        details: dict[str, Any] = {"read_data": read_data, "read_data_subset": read_data_subset, "repositories": {}}
        error: HengxinError | None = None
        try:
            with LeaseKeeper(self.leases, lease, self.lease_ttl):
                for name in [job.repository, *self.copy_targets(job)]:
                    try:
                        with self.repository(name, timeout=job.timeout_seconds) as restic:
                            restic.check(read_data=read_data, read_data_subset=read_data_subset)
                        details["repositories"][name] = "ok"
                    except HengxinError as e:
                        details["repositories"][name] = e.code
                        error = error or _in_repository(e, "check", name)
        except HengxinError as e:
            error = error or e
        except Exception as e:  # noqa: BLE001 - see _backup_holding
            logger.exception("check of %s failed unexpectedly", job.name)
            error = BackupError(f"unexpected error during the check: {type(e).__name__}")
        record = self._finish(
            kind=CHECK,
            job=job,
            trigger=trigger,
            actor=actor,
            started_at=started_at,
            duration=time.monotonic() - started,
            result=_BackupResult(),
            details=details,
            error=error,
        )
        return RunOutcome(record, error)

    # ------------------------------------------------------------------ scheduled runs

    def run_scheduled(self, kind: str, job_name: str, slot: dt.datetime) -> RunOutcome | None:
        """Run the scheduled ``kind`` (backup or check) of a job for the time ``slot``, once across all nodes.

        Returns ``None`` when another node already claimed this slot.  When the
        job is still running elsewhere, waits up to the job's timeout for its
        lease, then records a failed run (``backup.job_running``).
        """
        job = self.job(job_name)
        claim = f"{'backup-slot' if kind == BACKUP else 'backup-check-slot'}:{job.name}"
        if not self.leases.claim_run(claim, isoformat_utc(slot)):
            return None
        logger.info("scheduled %s of %s for %s claimed by %s", kind, job.name, isoformat_utc(slot), self.node)
        try:
            if kind == BACKUP:
                return self.run_backup(job.name, trigger="schedule", actor="scheduler", lease_wait=job.timeout_seconds)
            subset = read_data_subset(slot, self.zone, job.read_data_subset_days) if job.read_data_subset_days else None
            return self.run_check(
                job.name, read_data_subset=subset, trigger="schedule", actor="scheduler", lease_wait=job.timeout_seconds
            )
        except JobRunning as e:
            now = self.clock()
            record = self._finish(
                kind=kind,
                job=job,
                trigger="schedule",
                actor="scheduler",
                started_at=now,
                duration=0.0,
                result=_BackupResult(),
                details={"slot": isoformat_utc(slot)},
                error=e,
            )
            return RunOutcome(record, e)

    # ------------------------------------------------------------------ restore

    def restore(
        self, job_name: str, target: Path, *, snapshot: str = "latest", repository: str | None = None
    ) -> Manifest:
        """Restore a snapshot of the job into the empty directory ``target`` and verify it against its manifest.

        Files land at ``<target>/<original absolute path>``.  Returns the
        manifest.  Raises :class:`backup.errors.SnapshotNotFound`,
        :class:`backup.errors.IntegrityFailed` (naming the first file that
        differs), :class:`backup.errors.ManifestInvalid` and the restic errors.
        """
        job = self.job(job_name)
        with self.repository(repository or job.repository) as restic:
            snapshots = restic.snapshots(tags=[SNAPSHOT_TAG, job_tag(job.name)])
            chosen = _pick_snapshot(snapshots, snapshot)
            restic.restore(chosen.id, target)
        manifest_path = next((p for p in chosen.paths if p.endswith("/" + MANIFEST_NAME)), None)
        if manifest_path is None:
            from backup.errors import ManifestInvalid

            raise ManifestInvalid(f"snapshot {chosen.short_id} holds no {MANIFEST_NAME}", snapshot_id=chosen.short_id)
        manifest = Manifest.from_json(restored_path(target, manifest_path).read_bytes())
        verify_tree(manifest, target)
        return manifest

    # ------------------------------------------------------------------ history

    def _finish(
        self,
        *,
        kind: str,
        job: BackupJobSettings,
        trigger: str,
        actor: str,
        started_at: dt.datetime,
        duration: float,
        result: _BackupResult,
        details: dict[str, Any],
        error: HengxinError | None,
    ) -> RunRecord:
        outcome = SUCCESS if error is None else FAILED
        finished_at = self.clock()
        with transaction(self.sessions) as session:
            row = BackupRunRow(
                job=job.name,
                kind=kind,
                trigger=trigger,
                actor=actor,
                node=self.node,
                repository=job.repository,
                started_at=started_at,
                finished_at=finished_at,
                duration_seconds=round(duration, 3),
                result=outcome,
                snapshot_id=result.snapshot_id,
                files_total=result.files_total,
                files_new=result.files_new,
                files_changed=result.files_changed,
                bytes_processed=result.bytes_processed,
                bytes_added=result.bytes_added,
                manifest_sha256=result.manifest_sha256,
                details=json.dumps(details, sort_keys=True, default=str),
                error_code=error.code if error is not None else None,
                error_message=error.detail[:2000] if error is not None else None,
            )
            session.add(row)
            session.flush()
            audit_details: dict[str, Any] = {
                "run_id": row.id,
                "repository": job.repository,
                "trigger": trigger,
                "duration_ms": int(duration * 1000),
            }
            if kind == BACKUP:
                audit_details.update(
                    snapshot_id=result.snapshot_id, files=result.files_total, bytes_added=result.bytes_added
                )
            if error is not None:
                audit_details["error_code"] = error.code
            self.audit.append(
                session,
                actor=actor,
                action=f"backup.{kind}",
                target=f"backup-job:{job.name}",
                outcome="success" if error is None else "failure",
                source=trigger,
                details=audit_details,
            )
            record = _record_of(row)
        if error is None:
            logger.info(
                "%s of %s succeeded in %.1f s%s",
                kind,
                job.name,
                duration,
                f" (snapshot {result.snapshot_id})" if result.snapshot_id else "",
                extra={"backup_run": record.id},
            )
        else:
            self.alerts.raise_alert(
                "backup.failed" if kind == BACKUP else "backup.check_failed",
                "critical",
                f"{kind} of job {job.name!r} failed: {error.detail} [{error.code}]",
                job=job.name,
                kind=kind,
                run_id=record.id,
                code=error.code,
                node=self.node,
            )
        return record

    def list_runs(
        self,
        *,
        job: str | None = None,
        kind: str | None = None,
        result: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs newest first, optionally filtered; ``before_id`` pages backwards."""
        query = select(BackupRunRow)
        if job:
            query = query.where(BackupRunRow.job == job)
        if kind:
            query = query.where(BackupRunRow.kind == kind)
        if result:
            query = query.where(BackupRunRow.result == result)
        if before_id is not None:
            query = query.where(BackupRunRow.id < before_id)
        with transaction(self.sessions) as session:
            rows = session.scalars(query.order_by(BackupRunRow.id.desc()).limit(limit)).all()
            return [_record_of(row) for row in rows]

    def _latest(self, session: Session, job: str, kind: str, result: str | None = None) -> RunRecord | None:
        query = select(BackupRunRow).where(BackupRunRow.job == job, BackupRunRow.kind == kind)
        if result is not None:
            query = query.where(BackupRunRow.result == result)
        row = session.scalars(query.order_by(BackupRunRow.id.desc()).limit(1)).first()
        return _record_of(row) if row is not None else None

    def status(self) -> list[JobStatus]:
        """Every configured job with its next scheduled times and latest runs."""
        now = self.clock()
        statuses = []
        with transaction(self.sessions) as session:
            for job in self.config.jobs:
                backup_schedule = self.schedule(BACKUP, job.name)
                check_schedule = self.schedule(CHECK, job.name)
                statuses.append(
                    JobStatus(
                        name=job.name,
                        repository=job.repository,
                        copy_to=tuple(self.copy_targets(job)),
                        sources=tuple(job.sources) or tuple(self.sources.names()),
                        schedule=job.schedule,
                        next_run_at=backup_schedule.next_after(now, self.zone) if backup_schedule else None,
                        check_schedule=job.check_schedule,
                        next_check_at=check_schedule.next_after(now, self.zone) if check_schedule else None,
                        read_data_subset_days=job.read_data_subset_days,
                        retention=job.retention.policy(),
                        running_on=None,
                        last_run=self._latest(session, job.name, BACKUP),
                        last_success=self._latest(session, job.name, BACKUP, SUCCESS),
                        last_check=self._latest(session, job.name, CHECK),
                    )
                )
        return [dataclasses.replace(s, running_on=self.running_on(s.name)) for s in statuses]

    def metrics(self) -> str:
        """Prometheus exposition text for every configured job (see :mod:`backup.metrics`)."""
        samples = []
        with transaction(self.sessions) as session:
            counts: dict[tuple[str, str, str], int] = {}
            for job_name, kind, result, count in session.execute(
                select(BackupRunRow.job, BackupRunRow.kind, BackupRunRow.result, func.count()).group_by(
                    BackupRunRow.job, BackupRunRow.kind, BackupRunRow.result
                )
            ):
                counts[(job_name, kind, result)] = int(count)
            for job in self.config.jobs:
                last = self._latest(session, job.name, BACKUP)
                success = self._latest(session, job.name, BACKUP, SUCCESS)
                check = self._latest(session, job.name, CHECK, SUCCESS)
                samples.append(
                    JobMetrics(
                        job=job.name,
                        last_run_at=last.finished_at if last else None,
                        last_run_succeeded=last.succeeded if last else None,
                        last_success_at=success.finished_at if success else None,
                        last_duration_seconds=last.duration_seconds if last else None,
                        last_bytes_added=last.bytes_added if last else None,
                        last_bytes_processed=last.bytes_processed if last else None,
                        last_files=last.files_total if last else None,
                        runs_total=counts.get((job.name, BACKUP, SUCCESS), 0)
                        + counts.get((job.name, BACKUP, FAILED), 0),
                        failures_total=counts.get((job.name, BACKUP, FAILED), 0),
                        check_last_success_at=check.finished_at if check else None,
                        check_failures_total=counts.get((job.name, CHECK, FAILED), 0),
                    )
                )
        return render_metrics(samples)

    def close(self) -> None:
        """Wait (up to a minute each) for backups started by :meth:`start_backup` to finish."""
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=60)


# ---------------------------------------------------------------------------
# Helpers.


def _record_of(row: BackupRunRow) -> RunRecord:
    try:
        details = json.loads(row.details or "{}")
    except ValueError:
        details = {}
    return RunRecord(
        id=row.id,
        job=row.job,
        kind=row.kind,
        trigger=row.trigger,
        actor=row.actor,
        node=row.node,
        repository=row.repository,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=float(row.duration_seconds),
        result=row.result,
        snapshot_id=row.snapshot_id,
        files_total=int(row.files_total),
        files_new=int(row.files_new),
        files_changed=int(row.files_changed),
        bytes_processed=int(row.bytes_processed),
        bytes_added=int(row.bytes_added),
        manifest_sha256=row.manifest_sha256,
        details=details,
        error_code=row.error_code,
        error_message=row.error_message,
    )


def _apply_retention(restic: Restic, policy: Mapping[str, int], tags: Sequence[str]) -> ForgetResult:
    """``forget --prune`` of the job's snapshots (selected by ``tags``, grouped as one) with the keep_* policy."""
    return restic.forget(
        keep_last=policy.get("keep_last"),
        keep_hourly=policy.get("keep_hourly"),
        keep_daily=policy.get("keep_daily"),
        keep_weekly=policy.get("keep_weekly"),
        keep_monthly=policy.get("keep_monthly"),
        keep_yearly=policy.get("keep_yearly"),
        tags=tags,
        group_by="tags",
        prune=True,
    )


def _in_repository(error: HengxinError, step: str, repository: str) -> HengxinError:
    """The same error with the step and the repository named in its message (the code is kept)."""
    try:
        annotated = type(error)(
            f"{step} in repository {repository!r}: {error.detail}",
            detail_zh=f"仓库 {repository!r}（{step}）：{error.detail_zh or error.detail}",
            **{**error.extra, "repository": repository, "step": step},
        )
    except TypeError:
        return error
    annotated.__cause__ = error
    return annotated


def _lap(seconds: dict[str, float], step: str, since: float) -> float:
    """Record the seconds since ``since`` as ``step``'s and return now."""
    now = time.monotonic()
    seconds[step] = round(now - since, 3)
    return now


def _file_identity(path: Path) -> tuple[int, int, int, int]:
    """What tells one version of a file from another: device, inode, size and modification time."""
    status = path.stat()
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments ignored) from an extra-environment secret."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise BackupConfigurationError(f"line {number} of the repository's environment secret is not KEY=VALUE")
        env[name.strip()] = value.strip()
    return env


def _check_location(repository: BackupRepositorySettings) -> None:
    url = repository.url
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme in ("sftp", "s3", "rest", "b2", "azure", "gs", "swift", "rclone", "local"):
        return
    if not url.startswith("/"):
        raise BackupConfigurationError(
            f"repository {repository.name!r}: a local repository path must be absolute",
            detail_zh=f"仓库 {repository.name!r} 的本地路径必须是绝对路径",
        )


def _pick_snapshot(snapshots: Sequence[Snapshot], wanted: str) -> Snapshot:
    from backup.errors import SnapshotNotFound

    if not snapshots:
        raise SnapshotNotFound("the repository holds no snapshot of this job", detail_zh="仓库中没有该任务的快照")
    if wanted == "latest":
        return snapshots[-1]
    for snapshot in snapshots:
        if snapshot.id.startswith(wanted) or snapshot.short_id == wanted:
            return snapshot
    raise SnapshotNotFound(f"no snapshot of this job matches {wanted!r}", detail_zh="没有匹配的快照")
