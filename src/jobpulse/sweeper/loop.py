"""The sweeper: every JOBPULSE_SWEEP_INTERVAL_S, expire what is past its deadline and find
jobs that stopped heartbeating or sit unchanged. Every replica may run one: rows are claimed
with SKIP LOCKED and changed by compare-and-set, so no job is ever transitioned twice.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from opentelemetry import context as otel_context

from jobpulse.config import Settings
from jobpulse.domain import Job, Plan
from jobpulse.jobs.callbacks import with_callback, with_stuck_alert
from jobpulse.jobs.manager import JobManager
from jobpulse.sweeper.rules import StaleLimits, plan_sweep
from jobpulse.telemetry import trace_method

logger = logging.getLogger("jobpulse.sweeper")


def stale_limits(settings: Settings) -> StaleLimits:
    """The stale-job limits `settings` ask for."""
    return StaleLimits(
        created_s=settings.stale_created_s,
        pending_s=settings.stale_pending_s,
        running_s=settings.stale_running_s,
        expire=settings.stale_action == "expire",
    )


class Sweeper:
    """Sweeps the jobs of a manager's store by the rules of `plan_sweep`."""

    def __init__(
        self, jobs: JobManager, stale: StaleLimits | None = None, alert_webhook: str | None = None
    ) -> None:
        self._jobs = jobs
        #: When unchanged jobs count as stuck (none without it).
        self._stale = stale
        #: Where a `job.stuck` alert goes (none without it).
        self._alert_webhook = alert_webhook

    @classmethod
    def from_settings(cls, jobs: JobManager, settings: Settings) -> Sweeper:
        """A sweeper with the stale limits and alert webhook `settings` ask for."""
        return cls(jobs, stale_limits(settings), settings.alert_webhook)

    @trace_method
    async def sweep(self, limit: int = 500) -> list[tuple[Job, Plan]]:
        """Expire jobs past their deadline, flag and then expire silent ones (see plan_sweep);
        what changed. Safe to run on every replica at once.
        """
        now = self._jobs.now()
        trace = otel_context.get_current()
        rules = partial(plan_sweep, now=now, stale=self._stale)
        planner = partial(with_callback, rules, now, trace)
        planner = partial(with_stuck_alert, planner, self._alert_webhook)
        changed = await self._jobs.store.sweep_due(now, planner, limit, self._stale)
        self._jobs.applied(changed)
        return changed

    async def run(self, interval_s: float) -> None:
        """Sweep, then wait `interval_s`, until cancelled; a failed round is logged, not fatal."""
        while True:
            try:
                changed = await self.sweep()
            except Exception:  # the database may be away for a while: keep going
                logger.exception("sweep failed")
            else:
                for job, plan in changed:
                    logger.info("sweeper: %s %s", job.id, plan.event.reason if plan.event else "")
            await asyncio.sleep(interval_s)
