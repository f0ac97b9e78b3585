"""Disaster-recovery drills: restore a snapshot into a sandbox, prove the restored platform works, measure.

:meth:`DrillService.run_drill` runs these steps, each timed:

1. ``select_snapshot``: the snapshot (latest by default) in the repository;
2. ``check_repository``: ``restic check --read-data`` (``[dr] check_read_data``), naming damaged packs;
3. ``restore``: ``restic restore`` into a fresh 0700 sandbox directory;
4. ``verify_files``: every restored file against the snapshot's manifest;
5. ``restore_database``: the database into a scratch database, row counts compared with the manifest;
6. ``verify_audit``: the restored audit chain, up to the head the manifest recorded;
7. ``start_sandbox``: ``hengxin --config <sandbox config> serve`` on a free 127.0.0.1 port, until ready;
8. ``probe:<name>``: each probe (:mod:`dr.probes`);
9. ``teardown``: always: stop the process group, drop the scratch database, delete the sandbox.

The result is ``passed``, ``failed`` (a step found the backup or the restored
platform wrong) or ``could_not_run`` (a precondition was missing: a secret, the
repository password, the repository itself).  RTO is the time from the start
of the drill to the last probe passing; RPO is the age of the snapshot at drill
time.  Every drill is one ``dr_drills`` row, written with its audit record.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import secrets as pysecrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from backup.errors import BackupError, IntegrityFailed, ManifestInvalid
from backup.leases import JobLeases
from backup.manifest import Manifest, restored_path, verify_tree
from backup.restic import Snapshot
from backup.schedule import CronSchedule
from backup.service import MANIFEST_NAME, SNAPSHOT_TAG, BackupService, node_name
from core.alerts import AlertChannel
from core.audit import AuditLog
from core.clock import Clock, isoformat_utc, utc_now
from core.config import Settings
from core.errors import Category, HengxinError
from core.secrets import SecretStore
from core.store import build_engine, session_factory, transaction
from core.store.models import APITokenRow
from dr.errors import (
    DrillCouldNotRun,
    DrillFailed,
    DrillNotFound,
    DrillRunning,
    RowCountsDiffer,
    SecretsMissing,
)
from dr.models import DrillRow
from dr.probes import Probe, ProbeContext, ProbeSkipped, default_probes
from dr.sandbox import Sandbox, free_port, sandbox_settings

logger = logging.getLogger("hengxin.dr")

PASSED = "passed"
FAILED = "failed"
COULD_NOT_RUN = "could_not_run"
RUNNING = "running"
EXIT_CODES = {PASSED: 0, FAILED: 2, COULD_NOT_RUN: 1}

# Errors that say the drill could not even start proving anything.
_PRECONDITION_CODES = frozenset(
    {
        "backup.wrong_password",
        "backup.repository_not_found",
        "backup.restic_missing",
        "backup.repository_locked",
        "backup.snapshot_not_found",
        "backup.configuration_invalid",
        "secrets.not_found",
    }
)

AfterRestoreHook = Callable[[Path, Manifest], None]


class ReportSigner(Protocol):
    """Signs a drill's PDF report with the platform's seal (wired in ``api/``)."""

    def sign_report(self, pdf: bytes) -> tuple[bytes, str]:
        """Return the signed PDF and the PAdES level reached (``B-LT`` or ``B-T``)."""
        ...


class ReportRenderer(Protocol):
    def __call__(self, report: Mapping[str, Any], history: Sequence[Mapping[str, Any]], language: str) -> bytes: ...


class CertificateRegistrar(Protocol):
    """Records a sandbox-issued probe certificate in production as issued and immediately revoked."""

    def __call__(self, certificate: x509.Certificate, ca: str, drill_id: str) -> dict[str, Any]: ...


class SealLocator(Protocol):
    """Finds the platform seal certificate in the scratch database (wired in ``api/``, which knows the CA's tables)."""

    def __call__(self, database_url: str, password: str | None) -> str | None:
        """The seal certificate's id in the restored CA, or ``None`` when it holds no usable one."""
        ...


# The name the sandbox's configuration gives the restored platform seal; only the drill's token may use it.
PROBE_SEAL = "dr-probe"


@dataclasses.dataclass(frozen=True)
class DrillResult:
    id: str
    result: str
    started_at: dt.datetime
    finished_at: dt.datetime
    failing_step: str | None
    reason: str | None
    error_code: str | None
    rto_seconds: float | None
    rpo_seconds: float | None
    snapshot_id: str | None
    report: Mapping[str, Any]
    report_pdf_sha256: str | None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.result, 1)

    def to_json(self) -> dict[str, Any]:
        return dict(self.report)


@dataclasses.dataclass
class _Step:
    name: str
    status: str = "running"
    seconds: float = 0.0
    detail: Any = None
    measured: float | None = None  # the step's own duration when it ran in the background


class _Background:
    """A call run on its own thread; :meth:`join` returns its result or raises its error."""

    def __init__(self, name: str, call: Callable[[], Any]) -> None:
        self._call = call
        self._result: Any = None
        self._error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        began = time.monotonic()
        try:
            self._result = self._call()
        except BaseException as e:  # noqa: BLE001 - handed to whoever joins
            self._error = e
        finally:
            self.seconds = time.monotonic() - began

    def join(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def wait(self) -> None:
        """Wait for the call to end, whatever its outcome (nothing it started may outlive the drill)."""
        self._thread.join()


class _InventoryKeys:
    """Public keys from a restored ``key-inventory.json``: enough to verify the audit chain's checkpoints."""

    def __init__(self, inventory: list[dict[str, Any]]) -> None:
        self._keys = {item["key_id"]: base64.b64decode(item["public_key_der"]) for item in inventory}

    def public_key(self, key_id: str) -> Any:
        der = self._keys.get(key_id)
        if der is None:
            raise DrillFailed(
                f"the audit key {key_id!r} is not in the restored key inventory",
                detail_zh="恢复的密钥清单中没有审计密钥",
            )
        return serialization.load_der_public_key(der)


class DrillService:
    """Runs, schedules and lists drills.  See the module documentation."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        alerts: AlertChannel,
        secrets: SecretStore,
        backup: BackupService,
        clock: Clock = utc_now,
        extra_probes: Sequence[Probe] = (),
        report_renderer: ReportRenderer | None = None,
        report_signer: ReportSigner | None = None,
        certificate_registrar: CertificateRegistrar | None = None,
        seal_locator: SealLocator | None = None,
        serve_command: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.dr
        self.sessions = sessions
        self.audit = audit
        self.alerts = alerts
        self.secrets = secrets
        self.backup = backup
        self.clock = clock
        self.extra_probes = list(extra_probes)
        self.report_renderer = report_renderer
        self.report_signer = report_signer
        self.certificate_registrar = certificate_registrar
        self.seal_locator = seal_locator
        self.serve_command = serve_command
        self.node = node_name()
        self.work_dir = self.config.work_dir or settings.data_dir / "dr"
        self.report_dir = self.config.report_dir or self.work_dir / "reports"
        self.schedule = CronSchedule.parse(self.config.schedule) if self.config.schedule else None
        self.leases = JobLeases(sessions, self.node, clock=clock)
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()

    # ------------------------------------------------------------------ entry points

    def default_repository(self) -> str:
        if self.config.repository:
            return self.config.repository
        jobs = self.backup.jobs()
        if not jobs:
            raise DrillCouldNotRun(
                "no backup job is configured: there is nothing to restore", detail_zh="未配置备份任务"
            )
        return jobs[0].repository

    def start_drill(self, **options: Any) -> str:
        """Start a drill in a background thread; returns its id at once.  Raises DrillRunning."""
        if self._lock.locked():
            raise DrillRunning("a drill is already running in this process", detail_zh="本进程已有演练在运行")
        drill_id = self._new_id()
        ready = threading.Event()

        def work() -> None:
            try:
                self.run_drill(drill_id=drill_id, _started=ready, **options)
            except Exception:  # noqa: BLE001 - the drill records its own failure; this is the last resort
                logger.exception("drill %s crashed", drill_id)
            finally:
                ready.set()
                self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=work, name=f"drill-{drill_id}", daemon=True)
        self._threads.add(thread)
        thread.start()
        ready.wait(timeout=30)
        return drill_id

    def run_drill(
        self,
        *,
        repository: str | None = None,
        snapshot: str = "latest",
        trigger: str = "cli",
        actor: str = "system",
        secrets_file: Path | None = None,
        after_restore: AfterRestoreHook | None = None,
        drill_id: str | None = None,
        _started: threading.Event | None = None,
    ) -> DrillResult:
        """Run one drill and record it; returns the result (never raises for a failed drill).

        Raises :class:`DrillRunning` when another drill holds the lock in this process.
        """
        if not self._lock.acquire(blocking=False):
            raise DrillRunning("a drill is already running in this process", detail_zh="本进程已有演练在运行")
        try:
            return self._run(
                drill_id or self._new_id(), repository, snapshot, trigger, actor, secrets_file, after_restore, _started
            )
        finally:
            self._lock.release()

    def _new_id(self) -> str:
        return self.clock().strftime("%Y%m%dT%H%M%SZ") + "-" + pysecrets.token_hex(3)

    # ------------------------------------------------------------------ the drill

    def _run(
        self,
        drill_id: str,
        repository: str | None,
        snapshot_wanted: str,
        trigger: str,
        actor: str,
        secrets_file: Path | None,
        after_restore: AfterRestoreHook | None,
        started_event: threading.Event | None,
    ) -> DrillResult:
        started_at = self.clock()
        t0 = time.monotonic()
        steps: list[_Step] = []
        facts: dict[str, Any] = {"probes": {}, "production_records": []}
        repository_name = repository or ""
        with transaction(self.sessions) as session:
            session.add(
                DrillRow(
                    id=drill_id,
                    started_at=started_at,
                    result=RUNNING,
                    trigger=trigger,
                    actor=actor,
                    node=self.node,
                    repository=repository_name or "-",
                )
            )
        if started_event is not None:
            started_event.set()
        error: HengxinError | None = None
        failing_step: str | None = None
        rto: float | None = None
        chosen: Snapshot | None = None
        sandbox: Sandbox | None = None

        @contextlib.contextmanager
        def step(name: str) -> Iterator[_Step]:
            current = _Step(name)
            steps.append(current)
            began = time.monotonic()
            try:
                yield current
                if current.status == "running":
                    current.status = "passed"
            except ProbeSkipped as e:
                current.status = "skipped"
                current.detail = str(e)
            except BaseException:
                current.status = "failed"
                raise
            finally:
                elapsed = time.monotonic() - began
                current.seconds = round(current.measured if current.measured is not None else elapsed, 3)

        check: _Background | None = None
        try:
            try:
                with step("select_snapshot") as current:
                    repository_name = repository_name or self.default_repository()
                    if self.config.check_read_data:
                        # `check --read-data` reads the whole repository back.  It starts now and runs while the
                        # snapshot is chosen and the sandbox prepared; it holds restic's exclusive lock, so the
                        # snapshot list is read without one.
                        name = repository_name
                        check = _Background(f"drill-check-{drill_id}", lambda: self._check_repository(name))
                    snapshots = self.backup.snapshots(repository_name, no_lock=check is not None)
                    chosen = _pick(snapshots, snapshot_wanted)
                    current.detail = {"snapshot": chosen.short_id, "time": isoformat_utc(chosen.time)}
                sandbox = Sandbox(self.work_dir, drill_id)
                facts["sandbox"] = str(sandbox.path)
                if self.serve_command is None:
                    # The sandbox's interpreter loads the platform while the repository is read back.
                    sandbox.prepare()
                if check is not None:
                    with step("check_repository") as current:
                        waited = time.monotonic()
                        try:
                            check.join()
                        finally:
                            current.measured = check.seconds
                            current.detail = {
                                "started_with": "select_snapshot",
                                "waited_seconds": round(time.monotonic() - waited, 3),
                            }
                with step("restore"), self.backup.repository(
                    repository_name, timeout=self.config.step_timeout_seconds
                ) as restic:
                    restic.restore(chosen.id, sandbox.restore_dir)
                with step("verify_files") as current:
                    manifest = self._manifest(chosen, sandbox.restore_dir)
                    if after_restore is not None:
                        after_restore(sandbox.restore_dir, manifest)
                    verify_tree(manifest, sandbox.restore_dir)
                    current.detail = {"files": len(manifest.files)}
                effective = self._effective_settings(manifest, sandbox.restore_dir)
                needed = self._needed_secrets(effective)
                with step("restore_database") as current:
                    database_url, counts = self._restore_database(manifest, sandbox, effective, needed)
                    current.detail = {"tables": len(counts), "rows": sum(counts.values())}
                with step("verify_audit") as current:
                    current.detail = self._verify_audit(manifest, sandbox.restore_dir, database_url, needed)
                with step("start_sandbox") as current:
                    secret_values = self._resolve_secrets(needed, secrets_file)
                    token = self._sandbox_token(database_url, drill_id, needed, secret_values)
                    seal = self._sandbox_seal(database_url, drill_id)
                    sandbox.port = free_port()
                    settings = sandbox_settings(
                        effective,
                        sandbox=sandbox.path,
                        port=sandbox.port,
                        database_url=database_url,
                        key_directory=self._restored_root(manifest, sandbox.restore_dir, "keys"),
                        audit_export_dir=self._restored_root(manifest, sandbox.restore_dir, "audit-segments"),
                        probe_seal=seal,
                        audience=_sandbox_audience(drill_id),
                    )
                    sandbox.data_dir.mkdir(mode=0o700, exist_ok=True)
                    sandbox.write_secrets(secret_values)
                    config = sandbox.write_config(settings)
                    sandbox.start(config, self.serve_command)
                    waited = sandbox.wait_ready(self.config.start_timeout_seconds)
                    current.detail = {"port": sandbox.port, "ready_after_seconds": round(waited, 3)}
                context = ProbeContext(drill_id, sandbox.base_url, token, sandbox.path)
                probes = default_probes(
                    on_certificate=lambda cert, ca: self._record_probe_certificate(cert, ca, drill_id, facts),
                    on_timestamp=lambda info: self._record_probe(drill_id, "dr.probe_timestamp", info, facts),
                    seal=PROBE_SEAL if seal is not None else None,
                    on_signature=lambda info: self._record_probe(drill_id, "dr.probe_signature", info, facts),
                    audience=_sandbox_audience(drill_id),
                )
                for probe in [*probes, *self.extra_probes]:
                    with step(f"probe:{probe.name}") as current:
                        current.detail = probe.run(context)
                        facts["probes"][probe.name] = current.detail
                rto = round(time.monotonic() - t0, 3)
            except HengxinError as e:
                error = e
            except Exception as e:  # noqa: BLE001 - a drill must end with a record whatever broke
                logger.exception("drill %s: unexpected failure", drill_id)
                error = DrillFailed(f"unexpected failure: {type(e).__name__}: {e}")
            finally:
                if check is not None:
                    check.wait()
                if sandbox is not None:
                    with step("teardown") as current:
                        problems = sandbox.teardown()
                        current.detail = {"problems": problems} if problems else {"removed": str(sandbox.path)}
                        current.detail["seconds"] = dict(sandbox.teardown_seconds)
                        if problems and error is None:
                            error = DrillFailed("the sandbox was not torn down cleanly: " + "; ".join(problems))
                            current.status = "failed"
        finally:
            if started_event is not None:
                started_event.set()
        if error is not None:
            failing_step = next((s.name for s in steps if s.status == "failed"), steps[-1].name if steps else None)
        result = PASSED if error is None else (COULD_NOT_RUN if _is_precondition(error) else FAILED)
        finished_at = self.clock()
        rpo = round((started_at - chosen.time).total_seconds(), 3) if chosen is not None else None
        report = self._report(
            drill_id, started_at, finished_at, result, failing_step, error, rto, rpo, chosen, repository_name,
            steps, facts, trigger, actor,
        )
        pdf, pdf_sha256 = self._render_pdf(report)
        if pdf is not None:
            report["report_pdf_sha256"] = pdf_sha256
        with transaction(self.sessions) as session:
            row = session.get(DrillRow, drill_id)
            assert row is not None
            row.finished_at = finished_at
            row.result = result
            row.repository = repository_name or "-"
            row.snapshot_id = chosen.id if chosen is not None else None
            row.failing_step = failing_step
            row.reason = error.detail if error is not None else None
            row.error_code = error.code if error is not None else None
            row.rto_seconds = rto
            row.rpo_seconds = rpo
            row.report_json = json.dumps(report, ensure_ascii=False, sort_keys=True)
            row.report_pdf = pdf
            row.report_pdf_sha256 = pdf_sha256
            self.audit.append(
                session,
                actor=actor,
                action="dr.drill",
                target=f"drill:{drill_id}",
                details={
                    "result": result,
                    "failing_step": failing_step,
                    "error_code": error.code if error else None,
                    "snapshot": chosen.short_id if chosen else None,
                    "rto_ms": round(rto * 1000) if rto is not None else None,
                    "rpo_ms": round(rpo * 1000) if rpo is not None else None,
                    "report_pdf_sha256": pdf_sha256,
                },
                outcome="success" if result == PASSED else "failure",
            )
        self._write_report_files(drill_id, report, pdf)
        if result != PASSED:
            self.alerts.raise_alert(
                "dr.drill_failed" if result == FAILED else "dr.drill_could_not_run",
                "critical",
                f"disaster-recovery drill {drill_id} {result.replace('_', ' ')} at step {failing_step}: "
                f"{error.detail if error else ''}",
                drill=drill_id,
            )
        return DrillResult(
            drill_id, result, started_at, finished_at, failing_step, error.detail if error else None,
            error.code if error else None, rto, rpo, chosen.id if chosen else None, report, pdf_sha256,
        )

    # ------------------------------------------------------------------ steps

    def _check_repository(self, repository: str) -> None:
        with self.backup.repository(repository, timeout=self.config.step_timeout_seconds) as restic:
            restic.check(read_data=True)

    def _manifest(self, snapshot: Snapshot, target: Path) -> Manifest:
        path = next((p for p in snapshot.paths if p.endswith("/" + MANIFEST_NAME)), None)
        if path is None:
            raise ManifestInvalid(f"snapshot {snapshot.short_id} holds no {MANIFEST_NAME}")
        restored = restored_path(target, path)
        if not restored.exists():
            raise IntegrityFailed(f"restored file {MANIFEST_NAME}: missing", path=MANIFEST_NAME, problem="missing")
        return Manifest.from_json(restored.read_bytes())

    @staticmethod
    def _restored_root(manifest: Manifest, target: Path, root: str) -> Path | None:
        source = manifest.roots.get(root)
        return restored_path(target, source) if source is not None else None

    def _effective_settings(self, manifest: Manifest, target: Path) -> dict[str, Any]:
        directory = self._restored_root(manifest, target, "config-effective")
        if directory is None or not (directory / "effective-settings.json").exists():
            raise DrillCouldNotRun(
                "the snapshot holds no effective settings (source 'config'): the sandbox cannot be configured",
                detail_zh="快照中没有有效配置，无法配置沙箱",
            )
        data = json.loads((directory / "effective-settings.json").read_text("utf-8"))
        if not isinstance(data, dict):
            raise DrillFailed("the restored effective settings are not a JSON object")
        return data

    def _needed_secrets(self, effective: Mapping[str, Any]) -> list[str]:
        names: list[str] = []
        keys = effective.get("keys") or {}
        if keys.get("backend", "file") == "file":
            names.append(keys.get("passphrase_secret") or self.settings.keys.passphrase_secret)
        database = effective.get("database") or {}
        if database.get("password_secret"):
            names.append(database["password_secret"])
        return names

    def _resolve_secrets(self, names: Sequence[str], secrets_file: Path | None) -> dict[str, str]:
        """Each needed secret from the operator's file, ``[dr] secrets_dir`` or the live secret store.

        Raises :class:`SecretsMissing` naming the first one found nowhere.
        """
        from_file: dict[str, str] = {}
        single: str | None = None
        if secrets_file is not None:
            try:
                lines = [line.strip() for line in secrets_file.read_text("utf-8").splitlines()]
            except OSError as e:
                raise SecretsMissing(
                    f"cannot read the secrets file {secrets_file}", detail_zh="无法读取机密文件"
                ) from e
            lines = [line for line in lines if line and not line.startswith("#")]
            if len(lines) == 1 and "=" not in lines[0]:
                single = lines[0]
            for line in lines:
                name, sep, value = line.partition("=")
                if sep:
                    from_file[name.strip()] = value.strip()
        values: dict[str, str] = {}
        for number, name in enumerate(names):
            if name in from_file:
                values[name] = from_file[name]
                continue
            if single is not None and number == 0:
                values[name] = single
                continue
            if self.config.secrets_dir is not None and (self.config.secrets_dir / name).is_file():
                values[name] = (self.config.secrets_dir / name).read_text("utf-8").strip()
                continue
            if self.config.live_secrets and self.secrets.exists(name):
                values[name] = self.secrets.get(name)
                continue
            raise SecretsMissing(
                f"the secret {name!r} is not in backups and was not supplied: give --secrets-file, "
                "set [dr] secrets_dir, or put it in the secret store",
                detail_zh=f"机密 {name!r} 不在备份中且未提供",
                secret=name,
            )
        return values

    def _restore_database(
        self, manifest: Manifest, sandbox: Sandbox, effective: Mapping[str, Any], needed: Sequence[str]
    ) -> tuple[str, dict[str, int]]:
        section = manifest.sections.get("database") or {}
        directory = self._restored_root(manifest, sandbox.restore_dir, "database")
        if directory is None or not section:
            raise DrillFailed("the snapshot holds no database copy", detail_zh="快照中没有数据库副本")
        dump = directory / str(section.get("file", ""))
        password: str | None = None
        if section.get("dialect") == "postgresql":
            name = self.settings.database.password_secret
            password = self.secrets.get(name) if name and self.secrets.exists(name) else None
            url = sandbox.postgresql_database(
                self.settings.database_admin_url, dump, password=password, timeout=self.config.step_timeout_seconds
            )
        else:
            url = sandbox.sqlite_database(dump)
        counts = _row_counts(url, manifest.row_counts.keys(), password)
        differing = [
            f"{table}: {counts.get(table)} rows, manifest {expected}"
            for table, expected in sorted(manifest.row_counts.items())
            if counts.get(table) != expected
        ]
        if differing:
            raise RowCountsDiffer(
                "restored row counts differ from the manifest: " + "; ".join(differing[:5]),
                detail_zh="恢复的数据行数与备份清单不符：" + "；".join(differing[:5]),
                tables=differing,
            )
        sandbox_url = url
        self._scratch_password = password
        return sandbox_url, counts

    def _verify_audit(
        self, manifest: Manifest, target: Path, database_url: str, needed: Sequence[str]
    ) -> dict[str, Any]:
        inventory_dir = self._restored_root(manifest, target, "keys-inventory")
        inventory = (
            json.loads((inventory_dir / "key-inventory.json").read_text("utf-8")) if inventory_dir is not None else []
        )
        log = AuditLog(_InventoryKeys(inventory), "", instance=self.settings.instance.name)  # type: ignore[arg-type]
        engine = build_engine(database_url, pool_size=1, password=getattr(self, "_scratch_password", None))
        try:
            with transaction(session_factory(engine)) as session:
                report = log.verify(session)
                head = manifest.audit_head
                if head is not None:
                    from core.store.models import AuditRecordRow

                    found = session.execute(
                        select(AuditRecordRow.record_hash).where(AuditRecordRow.sequence == head.sequence)
                    ).scalar_one_or_none()
                    if found != head.hash:
                        raise DrillFailed(
                            f"the restored audit chain does not hold the recorded head (sequence {head.sequence})",
                            detail_zh="恢复的审计链不包含备份时记录的链头",
                        )
        finally:
            engine.dispose()
        return {
            "records": report.records,
            "head_sequence": report.head_sequence,
            "checkpoints": report.checkpoints,
            "manifest_head": head.sequence if head else None,
        }

    def _sandbox_token(
        self, database_url: str, drill_id: str, needed: Sequence[str], secret_values: Mapping[str, str]
    ) -> str:
        """A bearer token that exists only in the scratch database (so it opens nothing in production)."""
        token = "hxt_dr_" + pysecrets.token_urlsafe(32)
        engine = build_engine(database_url, pool_size=1, password=getattr(self, "_scratch_password", None))
        try:
            with transaction(session_factory(engine)) as session:
                session.add(
                    APITokenRow(
                        name=_token_name(drill_id),
                        token_hash=hashlib.sha256(token.encode("utf-8")).hexdigest(),
                        permissions="*",
                        created_at=self.clock(),
                        expires_at=self.clock() + dt.timedelta(hours=2),
                        revoked=False,
                    )
                )
        finally:
            engine.dispose()
        return token

    def _sandbox_seal(self, database_url: str, drill_id: str) -> dict[str, Any] | None:
        """The ``[[signing.seals]]`` table of the restored platform seal, usable by the drill's token only."""
        if self.seal_locator is None:
            return None
        certificate = self.seal_locator(database_url, getattr(self, "_scratch_password", None))
        if certificate is None:
            return None
        return {"name": PROBE_SEAL, "certificate": certificate, "allowed_tokens": [_token_name(drill_id)]}

    # ------------------------------------------------------------------ production records of probes

    def _record_probe_certificate(
        self, certificate: x509.Certificate, ca: str, drill_id: str, facts: dict[str, Any]
    ) -> None:
        details: dict[str, Any] = {
            "drill": drill_id,
            "ca": ca,
            "serial": format(certificate.serial_number, "x"),
            "subject": certificate.subject.rfc4514_string(),
            "not_after": isoformat_utc(certificate.not_valid_after_utc),
            "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex(),
            "status": "revoked",
            "reason": "cessationOfOperation",
        }
        if self.certificate_registrar is not None:
            details["registered"] = self.certificate_registrar(certificate, ca, drill_id)
        self._record_probe(drill_id, "dr.probe_certificate", details, facts)

    def _record_probe(self, drill_id: str, action: str, details: Mapping[str, Any], facts: dict[str, Any]) -> None:
        with transaction(self.sessions) as session:
            self.audit.append(
                session, actor="dr", action=action, target=f"drill:{drill_id}", details={"drill": drill_id, **details}
            )
        facts["production_records"].append({"action": action, **details})

    # ------------------------------------------------------------------ report

    def _report(
        self,
        drill_id: str,
        started_at: dt.datetime,
        finished_at: dt.datetime,
        result: str,
        failing_step: str | None,
        error: HengxinError | None,
        rto: float | None,
        rpo: float | None,
        chosen: Snapshot | None,
        repository: str,
        steps: Sequence[_Step],
        facts: Mapping[str, Any],
        trigger: str,
        actor: str,
    ) -> dict[str, Any]:
        schedule_gap = self._schedule_gap(chosen, started_at)
        return {
            "type": "hengxin.dr.drill",
            "id": drill_id,
            "instance": self.settings.instance.name,
            "node": self.node,
            "trigger": trigger,
            "actor": actor,
            "started_at": isoformat_utc(started_at),
            "finished_at": isoformat_utc(finished_at),
            "duration_seconds": round((finished_at - started_at).total_seconds(), 3),
            "result": result,
            "exit_code": EXIT_CODES[result],
            "failing_step": failing_step,
            "error_code": error.code if error else None,
            "reason": error.detail if error else None,
            "reason_zh": error.detail_zh if error else None,
            "error": dict(error.extra) if error else None,
            "repository": repository,
            "snapshot": (
                {
                    "id": chosen.id,
                    "short_id": chosen.short_id,
                    "time": isoformat_utc(chosen.time),
                    "tags": list(chosen.tags),
                }
                if chosen
                else None
            ),
            "rto_seconds": rto,
            "rto_target_seconds": self.config.rto_target_seconds,
            "rto_met": rto is not None and rto <= self.config.rto_target_seconds,
            "rpo_seconds": rpo,
            "rpo_target_seconds": self.config.rpo_target_seconds,
            "rpo_met": rpo is not None and rpo <= self.config.rpo_target_seconds,
            "schedule": schedule_gap,
            "steps": [
                {"name": s.name, "status": s.status, "seconds": s.seconds, "detail": _jsonable(s.detail)} for s in steps
            ],
            "probes": _jsonable(facts.get("probes", {})),
            "production_records": _jsonable(facts.get("production_records", [])),
        }

    def _schedule_gap(self, chosen: Snapshot | None, now: dt.datetime) -> dict[str, Any] | None:
        if chosen is None:
            return None
        job_name = next((t.split(":", 1)[1] for t in chosen.tags if t.startswith("job:")), None)
        schedule = self.backup.schedule("backup", job_name) if job_name else None
        if schedule is None:
            return {"job": job_name, "expression": None}
        zone = self.settings.zone
        first = schedule.next_after(chosen.time, zone)
        second = schedule.next_after(first, zone)
        missed = 0
        slot = first
        while slot <= now and missed < 1000:
            missed += 1
            slot = schedule.next_after(slot, zone)
        return {
            "job": job_name,
            "expression": str(schedule),
            "interval_seconds": (second - first).total_seconds(),
            "next_slot_after_snapshot": isoformat_utc(first),
            "missed_slots": missed,
            "gap_seconds": max(0.0, (now - first).total_seconds()) if missed else 0.0,
        }

    def _render_pdf(self, report: dict[str, Any]) -> tuple[bytes | None, str | None]:
        if self.report_renderer is None:
            return None, None
        try:
            history = [r for r in self.history_points(limit=30) if r["id"] != report["id"]]
            pdf = self.report_renderer(report, [*history, _point(report)], self.config.language)
            if self.report_signer is not None:
                pdf, level = self.report_signer.sign_report(pdf)
                report["report_signature"] = {"level": level}
            else:
                report["report_signature"] = None
        except Exception as e:  # noqa: BLE001 - a report problem must not lose the drill's record
            logger.exception("drill report rendering or signing failed")
            report["report_error"] = f"{type(e).__name__}: {e}"
            return None, None
        return pdf, hashlib.sha256(pdf).hexdigest()

    def _write_report_files(self, drill_id: str, report: Mapping[str, Any], pdf: bytes | None) -> None:
        try:
            self.report_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.report_dir / f"drill-{drill_id}.json").write_text(
                json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            if pdf is not None:
                (self.report_dir / f"drill-{drill_id}.pdf").write_bytes(pdf)
        except OSError:
            logger.exception("cannot write the drill report files")

    # ------------------------------------------------------------------ history

    def list_drills(self, *, limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
        """Drills, newest first (ids sort by start time), ``limit`` + 1 at most for pagination."""
        with transaction(self.sessions) as session:
            query = select(DrillRow).order_by(DrillRow.id.desc()).limit(limit + 1)
            if before is not None:
                query = query.where(DrillRow.id < before)
            return [_summary(row) for row in session.scalars(query)]

    def history_points(self, limit: int = 30) -> list[dict[str, Any]]:
        """The last ``limit`` finished drills, oldest first: id, start, result, RTO, RPO (for the chart)."""
        with transaction(self.sessions) as session:
            rows = session.scalars(
                select(DrillRow).where(DrillRow.result != RUNNING).order_by(DrillRow.id.desc()).limit(limit)
            ).all()
            return [
                {
                    "id": r.id,
                    "started_at": isoformat_utc(r.started_at),
                    "result": r.result,
                    "rto_seconds": r.rto_seconds,
                    "rpo_seconds": r.rpo_seconds,
                }
                for r in reversed(rows)
            ]

    def get(self, drill_id: str) -> dict[str, Any]:
        with transaction(self.sessions) as session:
            row = session.get(DrillRow, drill_id)
            if row is None:
                raise DrillNotFound(f"no drill {drill_id!r}", detail_zh="演练不存在")
            if row.result == RUNNING:
                return _summary(row)
            return dict(json.loads(row.report_json))

    def report_pdf(self, drill_id: str) -> bytes | None:
        with transaction(self.sessions) as session:
            row = session.get(DrillRow, drill_id)
            if row is None:
                raise DrillNotFound(f"no drill {drill_id!r}", detail_zh="演练不存在")
            return row.report_pdf

    # ------------------------------------------------------------------ schedule and overdue

    def run_scheduled(self, slot: dt.datetime) -> DrillResult | None:
        """Run the drill of ``slot`` if this node claims it (one node per slot)."""
        if not self.leases.claim_run("dr-slot", isoformat_utc(slot)):
            return None
        return self.run_drill(trigger="schedule", actor="scheduler")

    def check_overdue(self) -> bool:
        """Raise ``dr.overdue`` when no drill passed within ``[dr] overdue_days``; returns whether overdue."""
        with transaction(self.sessions) as session:
            last = session.execute(
                select(DrillRow.started_at).where(DrillRow.result == PASSED).order_by(DrillRow.id.desc()).limit(1)
            ).scalar_one_or_none()
        limit = dt.timedelta(days=self.config.overdue_days)
        if last is not None and self.clock() - last <= limit:
            return False
        self.alerts.raise_alert(
            "dr.overdue",
            "warning",
            "no disaster-recovery drill passed in the last "
            f"{self.config.overdue_days:g} days" + (f" (last: {isoformat_utc(last)})" if last else " (never)"),
        )
        return True

    def close(self) -> None:
        for thread in list(self._threads):
            thread.join(timeout=1)


def _token_name(drill_id: str) -> str:
    return f"dr-drill-{drill_id}"


def _sandbox_audience(drill_id: str) -> str:
    """The ``aud`` of the sandbox's access tokens: never production's, so its relying parties refuse them."""
    return f"hengxin-dr-{drill_id}"


def _pick(snapshots: Sequence[Snapshot], wanted: str) -> Snapshot:
    from backup.errors import SnapshotNotFound

    ours = [s for s in snapshots if SNAPSHOT_TAG in s.tags]
    if not ours:
        raise SnapshotNotFound("the repository holds no Hengxin snapshot", detail_zh="仓库中没有快照")
    if wanted == "latest":
        return ours[-1]
    for snapshot in ours:
        if snapshot.id.startswith(wanted) or snapshot.short_id == wanted:
            return snapshot
    raise SnapshotNotFound(f"no snapshot matches {wanted!r}", detail_zh="没有匹配的快照")


def _row_counts(url: str, tables: Any, password: str | None) -> dict[str, int]:
    engine = build_engine(url, pool_size=1, password=password)
    counts: dict[str, int] = {}
    try:
        with engine.connect() as connection:
            for table in tables:
                quoted = '"' + str(table).replace('"', '""') + '"'
                try:
                    counts[table] = int(connection.execute(text(f"SELECT count(*) FROM {quoted}")).scalar_one())  # noqa: S608
                except Exception:  # noqa: BLE001 - a missing table is reported as a difference
                    connection.rollback()
    finally:
        engine.dispose()
    return counts


def _is_precondition(error: HengxinError) -> bool:
    if isinstance(error, DrillCouldNotRun):
        return True
    if isinstance(error, DrillFailed):
        return False
    if error.code in _PRECONDITION_CODES:
        return True
    return isinstance(error, BackupError) is False and error.category is Category.CONFIGURATION


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _point(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": report["id"],
        "started_at": report["started_at"],
        "result": report["result"],
        "rto_seconds": report["rto_seconds"],
        "rpo_seconds": report["rpo_seconds"],
    }


def _summary(row: DrillRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "started_at": isoformat_utc(row.started_at),
        "finished_at": isoformat_utc(row.finished_at) if row.finished_at else None,
        "result": row.result,
        "trigger": row.trigger,
        "actor": row.actor,
        "repository": row.repository,
        "snapshot_id": row.snapshot_id,
        "failing_step": row.failing_step,
        "reason": row.reason,
        "error_code": row.error_code,
        "rto_seconds": row.rto_seconds,
        "rpo_seconds": row.rpo_seconds,
        "report_pdf_sha256": row.report_pdf_sha256,
    }

