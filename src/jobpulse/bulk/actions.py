"""The loop of a bulk action: step through the matching jobs a batch at a time, each batch
its own short write through the store, yielding to other work in between.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

from opentelemetry import context as otel_context

from jobpulse.batches.rules import BATCH_JOB_TYPE
from jobpulse.bulk.rules import BATCH_SIZE, BULK_REASON, BulkResult, bounded, only_active
from jobpulse.domain import ACTIVE, Actor, Job, JobChange, JobStatus, Plan, StopReason, plan_change
from jobpulse.jobs.callbacks import with_callback
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter
from jobpulse.storage.bulk import Cursor

#: While changes keep coming, a bulk action rests this long after each step for each second
#: the step took (see docs/bulk-actions.md: the p99 of other transitions during a bulk cancel).
YIELD_SHARE = 1.0


class BulkActions:
    """Cancels, or re-sends the callbacks of, every job the actor may see under a filter."""

    def __init__(self, jobs: JobManager, batch_size: int = BATCH_SIZE) -> None:
        self.jobs = jobs
        self.batch_size = batch_size
        #: Rest after each step while the writer is busy, as a share of the step's time.
        self.yield_share = YIELD_SHARE

    async def cancel(
        self, actor: Actor, query: JobFilter, *, dry_run: bool = False, reason: str | None = None
    ) -> BulkResult:
        """Cancel the active matching jobs; `dry_run` only counts them."""
        query = bounded(query, self.jobs.now())
        if dry_run:
            count = await self.jobs.count_jobs(actor, query)
            active = sum(number for status, number in count.by_status.items() if status in ACTIVE)
            return BulkResult(count.total, active)
        change = JobChange(
            status=JobStatus.CANCELLED,
            stop_reason=StopReason.CANCELLED,
            reason=reason or BULK_REASON,
        )
        trace = otel_context.get_current()
        matched = changed = 0
        cursor: Cursor | None = None
        while True:
            now = self.jobs.now()
            cancel = partial(plan_change, change=change, now=now, actor=actor.user_id)
            planner = partial(with_callback, partial(only_active, cancel), now, trace)
            began = time.monotonic()
            step = await self.jobs.store.cancel_step(actor, query, cursor, self.batch_size, planner)
            matched += step.matched
            changed += len(step.changed)
            self.jobs.applied(step.changed)
            await self._batches_ended(step.changed)
            if step.cursor is None:
                return BulkResult(matched, changed)
            cursor = step.cursor
            await self._make_way(time.monotonic() - began)

    async def resend_callbacks(
        self, actor: Actor, query: JobFilter, *, dry_run: bool = False
    ) -> BulkResult:
        """Deliver again the callback of every ended matching job that has one (same
        webhook-id); `dry_run` only counts them.
        """
        query = bounded(query, self.jobs.now())
        if dry_run:
            async with self.jobs.reads.turn(actor.organization_id):
                matched, resendable = await self.jobs.store.count_resendable(actor, query)
            return BulkResult(matched, resendable)
        matched = changed = 0
        cursor: Cursor | None = None
        while True:
            began = time.monotonic()
            step = await self.jobs.store.resend_step(
                actor, query, cursor, self.batch_size, self.jobs.now()
            )
            matched += step.matched
            changed += step.resent
            if step.resent:
                self.jobs.hooks.webhooks_queued()
            if step.cursor is None:
                return BulkResult(matched, changed)
            cursor = step.cursor
            await self._make_way(time.monotonic() - began)

    async def _make_way(self, spent: float) -> None:
        """Between steps: while other changes keep coming, rest as long as the step took (a
        bulk action then takes at most half of the writer's time and of this event loop's);
        on a quiet writer, only let other tasks run.
        """
        busy = self.jobs.store.traffic.recent()
        await asyncio.sleep(spent * self.yield_share if busy else 0)

    async def _batches_ended(self, changed: list[tuple[Job, Plan]]) -> None:
        """Tell the poller of LLM batches cancelled (it cancels them at their provider)."""
        ended = [job for job, _plan in changed if job.job_type == BATCH_JOB_TYPE]
        for job in ended:
            await self.jobs.store.poll_batch_soon(job.id, self.jobs.now())
        if ended:
            self.jobs.hooks.batch_ended()
