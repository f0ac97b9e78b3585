"""The scheduler that ``hengxin serve`` runs as a background task.

Every ``interval`` seconds it looks at each scheduled backup and check.  When
a job's next firing time has passed, that time is the run's *slot*; the node
then asks the database to claim the slot (:meth:`BackupService.run_scheduled`),
and only the node whose claim succeeds runs it.  Every node computes the same
slots from the same cron expressions, so when several nodes serve one
database a scheduled run happens once, not once per node.

Missed slots are not caught up one by one: a scheduler that fell behind runs
one run, for the first slot it missed, and a restarted node waits for the next
slot (the metrics and ``hengxin backup status`` show how old the last success
is; alert on it).  Runs execute on worker threads, so the event loop keeps serving requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from backup.service import BackupService
from core.clock import Clock, utc_now

logger = logging.getLogger("hengxin.backup.scheduler")


class BackupScheduler:
    """Decides which scheduled runs are due; :meth:`run` is the long-lived async task."""

    def __init__(self, service: BackupService, *, clock: Clock = utc_now, interval: float = 15.0) -> None:
        self.service = service
        self.clock = clock
        self.interval = interval
        self._next: dict[tuple[str, str], dt.datetime] = {}
        self._running: set[asyncio.Task[None]] = set()

    def due(self, now: dt.datetime) -> list[tuple[str, str, dt.datetime]]:
        """The (kind, job, slot) whose slot has come since the previous call; advances past them.

        The first call only sets each job's next slot (after ``now``).
        """
        found = []
        for kind, job, schedule in self.service.scheduled():
            key = (kind, job)
            upcoming = self._next.get(key)
            if upcoming is None:
                self._next[key] = schedule.next_after(now, self.service.zone)
                continue
            if now >= upcoming:
                found.append((kind, job, upcoming))
                self._next[key] = schedule.next_after(now, self.service.zone)
        return found

    async def run(self) -> None:
        """Check for due runs forever (until cancelled); each claimed run executes on a worker thread."""
        if not self.service.scheduled():
            return
        logger.info("backup scheduler started on %s", self.service.node)
        try:
            while True:
                try:
                    for kind, job, slot in self.due(self.clock()):
                        task = asyncio.create_task(self._run_one(kind, job, slot))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                except Exception:  # noqa: BLE001 - the scheduler must survive a bad tick
                    logger.exception("backup scheduler tick failed")
                await asyncio.sleep(self.interval)
        finally:
            for task in list(self._running):
                task.cancel()

    async def _run_one(self, kind: str, job: str, slot: dt.datetime) -> None:
        try:
            await asyncio.to_thread(self.service.run_scheduled, kind, job, slot)
        except Exception:  # noqa: BLE001 - failures are recorded by the service; this catches bugs only
            logger.exception("scheduled %s of %s failed", kind, job)
