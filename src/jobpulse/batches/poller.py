"""The LLM batch poller: follows `llm_batch` jobs at their providers until the batches end.

Every replica may run one. Due batches are claimed under a lease (storage/batches.py), the
longest unpolled first, and polled with at most `batch_poll_concurrency` requests in flight;
each poll's outcome is written with its job's change in one transaction. A provider that
answers 429 or 5xx is not asked again (for any batch) before its Retry-After, or an
exponential backoff without one. A failed poll is recorded on the job and never changes its
status, except a batch unknown to its provider for `batch_not_found_fail_s`, which fails it.
A job cancelled through jobpulse has its batch cancelled at the provider and is followed to
the batch's end for its final counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from jobpulse.batches.providers import ProviderClient, ProviderError
from jobpulse.batches.rules import (
    Provider,
    Snapshot,
    gave_up,
    is_batch_id,
    plan_failed,
    plan_observed,
    storable,
)
from jobpulse.clock import utcnow
from jobpulse.config import LEASE_MARGIN_S, Settings
from jobpulse.domain import TERMINAL, Job, JobStatus, Plan
from jobpulse.jobs.manager import JobManager
from jobpulse.storage import batches
from jobpulse.telemetry import tracer
from jobpulse.webhooks.policy import retry_after_seconds

logger = logging.getLogger("jobpulse.batches")

#: The backoff's ceiling without a Retry-After (a Retry-After is honoured up to
#: `batch_max_pause_s`).
BACKOFF_MAX_S = 60.0
#: How often the poller looks for due batches when nothing wakes it.
TICK_S = 1.0


class BatchPoller:
    """Polls due batches and applies what their providers say to their jobs."""

    def __init__(
        self,
        jobs: JobManager,
        settings: Settings,
        client: ProviderClient,
        clock: Callable[[], datetime] = utcnow,
        due: asyncio.Event | None = None,
    ) -> None:
        self._jobs = jobs
        #: Set when a followed batch's job is ended through jobpulse (the manager's hook).
        self.due = due or asyncio.Event()
        self._client = client
        self._now = clock
        self._interval = timedelta(seconds=settings.batch_poll_interval_s)
        self._lease_s = settings.batch_lease_s
        self._not_found_fail_s = settings.batch_not_found_fail_s
        self._max_pause_s = settings.batch_max_pause_s
        self._expiry_grace = timedelta(seconds=settings.batch_expiry_grace_s)
        #: What a batch's results may take to read: the lease, less its other two requests.
        self._results_s = settings.batch_lease_s - 2 * settings.batch_timeout_s - LEASE_MARGIN_S
        self._concurrency = settings.batch_poll_concurrency
        self._slots = asyncio.Semaphore(self._concurrency)
        #: Per provider: the monotonic time before which it is not asked, and failures in a row.
        self._resume_at: dict[Provider, float] = {}
        self._failures: dict[Provider, int] = {}

    async def run(self, tick_s: float = TICK_S) -> None:
        """Poll due batches until cancelled; between rounds, wait for a batch's job to end
        through jobpulse or for `tick_s`.
        """
        due = self.due
        while True:
            try:
                await self.run_once()
            except Exception:  # the database may be away for a while: keep going
                logger.exception("batch polling round failed")
            due.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick_s):  # never swallows a cancel, as wait_for may
                    await due.wait()

    async def run_once(self) -> int:
        """Poll every batch due now, `batch_poll_concurrency` at a time; how many."""
        due_by = self._now()
        polled = 0
        async with asyncio.TaskGroup() as polls:
            while True:
                claimed = await self._jobs.store.claim_batches(
                    due_by, self._now(), 2 * self._concurrency, self._lease_s
                )
                if not claimed:
                    return polled
                for batch in claimed:
                    await self._slots.acquire()
                    polls.create_task(self._poll(batch))
                polled += len(claimed)

    async def _poll(self, batch: batches.Claimed) -> None:
        """Ask the provider holding a slot, then record what it said without one: the
        bound is on requests in flight, and a slot waiting on the database idles.
        """
        try:
            try:
                planner, poll = await self._observe(batch)
            finally:
                self._slots.release()
            await self._jobs.record_batch_poll(batch, planner, poll)
        except Exception:
            logger.exception("polling batch %s of job %s failed", batch.ref.batch_id, batch.job_id)

    async def _observe(
        self, batch: batches.Claimed
    ) -> tuple[Callable[[Job], Plan], batches.Polled]:
        """Poll the batch (unless it is let go or its provider paused): the job's change and
        the next poll.
        """
        provider = batch.ref.provider
        if batch.job_status in TERMINAL and batch.job_status != JobStatus.CANCELLED:
            return _unchanged, self._defer(batch, 0.0, ended=True)  # ended through jobpulse
        if not is_batch_id(batch.ref.batch_id):  # followed before ids were checked: never ask
            shown = storable(repr(batch.ref.batch_id), 80)
            message = f"batch_id {shown} is not a valid {provider} batch id: not polled"
            refused = partial(plan_failed, message=message, now=self._now(), give_up=True)
            return refused, self._defer(batch, 0.0, ended=True)
        wait = self._resume_at.get(provider, 0.0) - time.monotonic()
        if wait > 0:  # the provider asked for a pause: come back then, unasked
            return _unchanged, self._defer(batch, wait)
        with tracer().start_as_current_span("batch poll") as span:
            span.set_attribute("batch.provider", provider.value)
            span.set_attribute("batch.id", batch.ref.batch_id)
            span.set_attribute("job.id", batch.job_id)
            outcome, planner, poll = await self._ask(batch)
            span.set_attribute("batch.outcome", outcome)
        return planner, poll

    async def _ask(
        self, batch: batches.Claimed
    ) -> tuple[str, Callable[[Job], Plan], batches.Polled]:
        """Poll the batch: the outcome's metric label, the job's change and the next poll."""
        now = self._now()
        provider = batch.ref.provider
        cancel_sent = batch.cancel_sent_at
        started = time.perf_counter()
        try:
            if batch.job_status == JobStatus.CANCELLED and cancel_sent is None:
                await self._client.cancel(batch.ref)
                cancel_sent = now
            snapshot = await self._client.get(batch.ref)
            summary = None
            if snapshot.ended:
                summary = await self._summary(batch, snapshot)
        except ProviderError as exc:
            self._jobs.metrics.batch_polled(provider, _label(exc), time.perf_counter() - started)
            return (_label(exc), *self._failed(batch, exc, now, cancel_sent))
        outcome = "ended" if snapshot.ended else "ok"
        self._jobs.metrics.batch_polled(provider, outcome, time.perf_counter() - started)
        self._failures.pop(provider, None)
        poll = self._polled(now, self._interval, None, cancel_sent, snapshot.ended)
        planner = partial(
            plan_observed,
            snapshot=snapshot,
            summary=summary,
            now=now,
            lapsed_before=poll.lapsed_before,
        )
        return outcome, planner, poll

    async def _summary(self, batch: batches.Claimed, snapshot: Snapshot) -> dict[str, object]:
        """The ended batch's per-request summary; a results answer that will not come right
        by asking again (4xx) ends the job without it, saying why.
        """
        try:
            return await self._client.tally(batch.ref, snapshot, self._results_s)
        except ProviderError as exc:
            if exc.status is None or exc.throttled:
                raise
            return {"counts": {}, "errors": [], "unavailable": exc.message}

    def _failed(
        self,
        batch: batches.Claimed,
        exc: ProviderError,
        now: datetime,
        cancel_sent: datetime | None,
    ) -> tuple[Callable[[Job], Plan], batches.Polled]:
        """The job's change after a failed poll, and when to ask again."""
        provider = batch.ref.provider
        retry_s = self._interval.total_seconds()
        if exc.throttled:
            retry_s = self._back_off(provider, exc.retry_after, now)
        not_found_since = (batch.not_found_since or now) if exc.not_found else None
        give_up = gave_up(not_found_since, now, self._not_found_fail_s)
        message = exc.message
        if give_up:
            message = (
                f"batch {batch.ref.batch_id} unknown to {provider} for "
                f"{self._not_found_fail_s:g}s ({exc.message})"
            )
        poll = self._polled(now, timedelta(seconds=retry_s), not_found_since, cancel_sent, give_up)
        planner = partial(
            plan_failed,
            message=message,
            now=now,
            give_up=give_up,
            lapsed_before=poll.lapsed_before,
        )
        return planner, poll

    def _polled(
        self,
        now: datetime,
        again_in: timedelta,
        not_found_since: datetime | None,
        cancel_sent: datetime | None,
        ended: bool,
    ) -> batches.Polled:
        """What a poll at `now` leaves for the next: due `again_in`, unless `ended` or its
        batch's provider expiry lies more than the grace before `now`.
        """
        return batches.Polled(
            next_poll_at=now + again_in,
            polled_at=now,
            not_found_since=not_found_since,
            cancel_sent_at=cancel_sent,
            ended=ended,
            lapsed_before=now - self._expiry_grace,
        )

    def _back_off(self, provider: Provider, retry_after: str | None, now: datetime) -> float:
        """Pause every request to `provider`: for its Retry-After, or 1, 2, 4… up to 60 s;
        never longer than `batch_max_pause_s` (one answer must not stop every tenant's polls
        for long).
        """
        failures = self._failures[provider] = self._failures.get(provider, 0) + 1
        seconds = retry_after_seconds(retry_after, now)
        if seconds is None:
            seconds = min(2.0 ** (failures - 1), BACKOFF_MAX_S)
        seconds = min(seconds, self._max_pause_s)
        resume = time.monotonic() + seconds
        self._resume_at[provider] = max(resume, self._resume_at.get(provider, 0.0))
        return seconds

    def _defer(self, batch: batches.Claimed, wait_s: float, ended: bool = False) -> batches.Polled:
        """Put the batch back unasked, due in `wait_s` (or, `ended`, stop following it)."""
        return batches.Polled(
            next_poll_at=self._now() + timedelta(seconds=wait_s),
            polled_at=batch.polled_at or self._now(),
            not_found_since=batch.not_found_since,
            cancel_sent_at=batch.cancel_sent_at,
            ended=ended,
        )


def _unchanged(job: Job) -> Plan:
    return Plan(expected=job.status)


def _label(exc: ProviderError) -> str:
    if exc.not_found:
        return "not_found"
    return "throttled" if exc.throttled else "error"
