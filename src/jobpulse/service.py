"""JobManager: the only writer of jobs. Each change, its history event and (later) its
outbox rows commit in one transaction, guarded by a compare-and-set on the status.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from opentelemetry import context as otel_context

from jobpulse.batches import BATCH_JOB_TYPE, POLLER, batch_ref
from jobpulse.clock import utcnow
from jobpulse.config import Settings
from jobpulse.documents import text_problem
from jobpulse.domain import (
    HEARTBEAT_TIMEOUT_MAX_S,
    INITIAL,
    TIMEOUT_MAX_S,
    Actor,
    Job,
    JobChange,
    JobEvent,
    JobStatus,
    Plan,
    StopReason,
    check_duration,
    check_metadata,
    parse_status,
    parse_stop_reason,
    plan_change,
    plan_first_token,
    plan_heartbeat,
    to_utc,
)
from jobpulse.errors import ValidationError
from jobpulse.figures import Stats, Window
from jobpulse.gate import ReadGate
from jobpulse.listing import JobFilter, Page
from jobpulse.metrics import Metrics
from jobpulse.storage.batches import Claimed, Polled
from jobpulse.storage.retention import KINDS
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.store import JobStore, Planner
from jobpulse.sweeping import StaleLimits, plan_sweep
from jobpulse.telemetry import trace_headers, trace_method
from jobpulse.webhooks import guard, payload

#: What a step can report.
STEP_STATUSES = ("success", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class JobCount:
    """How many jobs match a filter, in all and per status."""

    total: int
    by_status: dict[JobStatus, int]


def _seconds(name: str, value: float | None, most: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise ValidationError(f"{name} must be a number of seconds above 0 and at most {most:g}")
    return float(value)


def _printable(name: str, value: str | None) -> None:
    """Refuse text that one of the databases could not store (see `text_problem`)."""
    if value is not None and (problem := text_problem(value)) is not None:
        raise ValidationError(f"{name} {problem}")


def _callback_url(value: str | None) -> str | None:
    if value is None:
        return None
    _printable("callback_url", value)
    guard.split(value)
    return value


def stale_limits(settings: Settings) -> StaleLimits:
    """The stale-job limits `settings` ask for."""
    return StaleLimits(
        created_s=settings.stale_created_s,
        pending_s=settings.stale_pending_s,
        running_s=settings.stale_running_s,
        expire=settings.stale_action == "expire",
    )


class JobManager:
    """Creates, changes, lists and deletes jobs, enforcing the state machine."""

    def __init__(
        self,
        store: JobStore,
        clock: Callable[[], datetime] = utcnow,
        *,
        allow_private_callbacks: bool = False,
        notify: Callable[[], None] | None = None,
        step_webhook: str | None = None,
        alert_webhook: str | None = None,
        metrics: Metrics | None = None,
        stale: StaleLimits | None = None,
        reads: ReadGate | None = None,
    ) -> None:
        self.store = store
        #: Turns for listings, counts and figures (see gate.py); the default settings without one.
        self.reads = reads or ReadGate.from_settings(Settings.model_construct())
        self._now = clock
        self._allow_private = allow_private_callbacks
        self._step_webhook = step_webhook
        self._alert_webhook = alert_webhook
        #: When unchanged jobs count as stuck (none without it).
        self._stale = stale
        self.metrics = metrics or Metrics()
        #: The jobs whose changes are in flight (the watchdog names them on a stall).
        self.handling: set[str] = set()
        #: Called after a commit that queued webhooks (wakes the delivery worker).
        self._notify = notify
        #: Set when a followed batch's job is ended through jobpulse (wakes the batch poller).
        self.batches_due = asyncio.Event()
        #: Called after a commit that wrote history events (wakes the live feed).
        self.on_events: Callable[[], None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, notify: Callable[[], None] | None = None
    ) -> JobManager:
        """A manager on the database `settings` names (already migrated)."""
        return cls(
            open_store(settings),
            allow_private_callbacks=settings.webhook_allow_private,
            notify=notify,
            step_webhook=settings.step_complete_webhook,
            alert_webhook=settings.alert_webhook,
            metrics=Metrics(settings.metrics_job_types_max),
            stale=stale_limits(settings),
            reads=ReadGate.from_settings(settings),
        )

    def now(self) -> datetime:
        """The time by this manager's clock."""
        return self._now()

    async def close(self) -> None:
        """Finish pending writes and close the store."""
        await self.store.close()

    @trace_method
    async def create_job(
        self,
        actor: Actor,
        *,
        job_type: str = "job",
        status: str = JobStatus.CREATED,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        background: bool = False,
        timeout_s: float | None = None,
        deadline_at: datetime | None = None,
        heartbeat_timeout_s: float | None = None,
        stale_after_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """A new job; with an idempotency key, the job made earlier with that key."""
        initial = parse_status(status)
        if initial not in INITIAL:
            raise ValidationError(f"a job is created as created, pending or running, not {initial}")
        if not isinstance(job_type, str) or not 1 <= len(job_type) <= 128:
            raise ValidationError("job_type must be a string of 1 to 128 characters")
        _printable("job_type", job_type)
        _printable("Idempotency-Key", idempotency_key)
        if timeout_s is not None and deadline_at is not None:
            raise ValidationError("give timeout_s or deadline_at, not both")
        now = self._now()
        timeout = _seconds("timeout_s", timeout_s, TIMEOUT_MAX_S)
        job = Job(
            id=f"job-{uuid.uuid4()}",
            organization_id=actor.organization_id,
            user_id=actor.user_id,
            job_type=job_type,
            status=initial,
            created_at=now,
            updated_at=now,
            background=bool(background),
            metadata=check_metadata(metadata if metadata is not None else {}),
            callback_url=_callback_url(callback_url),
            started_at=now if initial == JobStatus.RUNNING else None,
            deadline_at=(deadline_at and to_utc("deadline_at", deadline_at))
            or (now + timedelta(seconds=timeout) if timeout else None),
            heartbeat_timeout_s=_seconds(
                "heartbeat_timeout_s", heartbeat_timeout_s, HEARTBEAT_TIMEOUT_MAX_S
            ),
            stale_after_s=_seconds("stale_after_s", stale_after_s, TIMEOUT_MAX_S),
        )
        await self._check_callback(job.callback_url)
        if job_type == BATCH_JOB_TYPE:
            ref = batch_ref(job.metadata)
            stored, created = await self.store.create_batch_job(job, idempotency_key, ref)
        else:
            stored, created = await self.store.create(job, idempotency_key)
        if created:
            self.metrics.created(stored)
            self._events_written()
        return stored

    @trace_method
    async def get_job(self, actor: Actor, job_id: str) -> Job:
        """The job, if the actor may see it (NotFoundError otherwise)."""
        return await self.store.get(actor, job_id)

    @trace_method
    async def update_job(
        self,
        actor: Actor,
        job_id: str,
        *,
        status: str | None = None,
        stop_reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttft_ns: int | None = None,
        total_duration_ns: int | None = None,
        callback_url: str | None = None,
        reason: str | None = None,
    ) -> Job:
        """Apply a guarded change: status, stop reason, metadata merge, timings."""
        change = JobChange(
            status=None if status is None else parse_status(status),
            stop_reason=None if stop_reason is None else parse_stop_reason(stop_reason),
            metadata=None if metadata is None else check_metadata(metadata),
            ttft_ns=check_duration("ttft_ns", ttft_ns),
            total_duration_ns=check_duration("total_duration_ns", total_duration_ns),
            callback_url=_callback_url(callback_url),
            reason=reason,
        )
        _printable("reason", reason)
        await self._check_callback(change.callback_url)
        return await self._apply(
            actor, job_id, partial(plan_change, change=change, now=self._now(), actor=actor.user_id)
        )

    @trace_method
    async def cancel_job(self, actor: Actor, job_id: str, reason: str | None = None) -> Job:
        """Cancel the job (stop reason `cancelled`); InvalidTransitionError if it has ended."""
        return await self.update_job(
            actor,
            job_id,
            status=JobStatus.CANCELLED,
            stop_reason=StopReason.CANCELLED,
            reason=reason,
        )

    @trace_method
    async def heartbeat(
        self, actor: Actor, job_id: str, progress: Mapping[str, Any] | None = None
    ) -> Job:
        """Record that the job is alive, merging `progress` into its metadata."""
        patch = None if progress is None else check_metadata(progress, "progress")
        return await self._apply(
            actor,
            job_id,
            partial(plan_heartbeat, progress=patch, now=self._now(), actor=actor.user_id),
        )

    @trace_method
    async def record_first_token(self, actor: Actor, job_id: str) -> Job:
        """Set ttft_ns to the time since the job started, once."""
        return await self._apply(actor, job_id, partial(plan_first_token, now=self._now()))

    async def record_ttft(self, actor: Actor, job_id: str, ttft_ns: int) -> Job:
        """Set the time to first token the caller measured."""
        return await self.update_job(actor, job_id, ttft_ns=_required("ttft_ns", ttft_ns))

    async def record_duration(self, actor: Actor, job_id: str, total_duration_ns: int) -> Job:
        """Set the total duration the caller measured."""
        duration = _required("total_duration_ns", total_duration_ns)
        return await self.update_job(actor, job_id, total_duration_ns=duration)

    @trace_method
    async def delete_job(self, actor: Actor, job_id: str) -> None:
        """Delete the job and its history."""
        await self.store.delete(actor, job_id)

    @trace_method
    async def list_jobs(
        self, actor: Actor, query: JobFilter | None = None, page: Page | None = None
    ) -> list[Job]:
        """One page of the jobs the actor may see, filtered by `query`."""
        async with self.reads.turn(actor.organization_id):
            return await self.store.list_jobs(actor, query or JobFilter(), page or Page())

    @trace_method
    async def count_jobs(self, actor: Actor, query: JobFilter | None = None) -> JobCount:
        """How many of the actor's jobs match `query`, in all and per status."""
        async with self.reads.turn(actor.organization_id):
            by_status = await self.store.count_jobs(actor, query or JobFilter())
        return JobCount(total=sum(by_status.values()), by_status=by_status)

    @trace_method
    async def stats(
        self, actor: Actor, query: JobFilter | None = None, window: Window | None = None
    ) -> Stats:
        """The figures of the actor's jobs created in `window` (the last 24 hours by the hour
        by default) under `query`.
        """
        window = window or Window.last_day(self._now())
        async with self.reads.turn(actor.organization_id):
            return await self.store.window_stats(actor, query or JobFilter(), window)

    @trace_method
    async def list_events(self, actor: Actor, job_id: str) -> list[JobEvent]:
        """The job's status history, oldest first, rejected attempts included."""
        return await self.store.history(actor, job_id)

    @trace_method
    async def record_step(
        self,
        actor: Actor,
        job_id: str,
        *,
        status: str,
        step_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record a step of the job and fire the step-complete webhook (once per step id)."""
        if status not in STEP_STATUSES:
            raise ValidationError(f"step status must be one of {', '.join(STEP_STATUSES)}")
        step_id = step_id or f"step-{uuid.uuid4()}"
        _printable("step_id", step_id)
        details = check_metadata(metadata if metadata is not None else {})
        now = self._now()
        message = None
        if self._step_webhook:
            message = payload.step(self._step_webhook, job_id, step_id, status, details, now)
        record = {"step_id": step_id, "status": status, "metadata": details, "created_at": now}
        step = await self.store.record_step(actor, job_id, record, message)
        if message is not None:
            self._wake()
        return step

    @trace_method
    async def list_steps(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        """The job's steps, oldest first."""
        return await self.store.list_steps(actor, job_id)

    @trace_method
    async def sweep(self, limit: int = 500) -> list[tuple[Job, Plan]]:
        """Expire jobs past their deadline, flag and then expire silent ones (see plan_sweep);
        what changed. Safe to run on every replica at once.
        """
        now = self._now()
        trace = otel_context.get_current()
        rules = partial(plan_sweep, now=now, stale=self._stale)
        planner = partial(_with_callback, rules, now, trace)
        planner = partial(_with_stuck_alert, planner, self._alert_webhook)
        changed = await self.store.sweep_due(now, planner, limit, self._stale)
        for job, plan in changed:
            self.metrics.applied(job, plan)
        if any(plan.outbox for _job, plan in changed):
            self._wake()
        if changed:
            self._events_written()
        return changed

    @trace_method
    async def prune(
        self, older_than: timedelta, *, dry_run: bool = False, batch: int = 100
    ) -> dict[str, int]:
        """Remove ended jobs (with history, steps and attempts) and finished webhooks older
        than `older_than`, `batch` rows at a time, each batch a short transaction of its own;
        how many rows of each kind went (or, `dry_run`, would go). Active jobs and undelivered
        webhooks stay. While changes keep coming in, it makes way for them (see
        `retention.prune_batch`) and pauses after each batch as long as the batch took.
        """
        if older_than < timedelta(0) or batch < 1:
            raise ValidationError("older_than must not be negative, batch at least 1")
        cutoff = self._now() - older_than
        if dry_run:
            return await self.store.count_old(cutoff)
        total = dict.fromkeys(KINDS, 0)
        traffic = self.store.traffic
        while True:
            began = time.monotonic()
            pruned = await self.store.prune_step(cutoff, batch)
            for kind, number in pruned.removed.items():
                total[kind] += number
            self.metrics.pruned(pruned.removed)
            if pruned.finished:
                return total
            if traffic.recent():  # share the database with the changes: half the time each
                await asyncio.sleep(time.monotonic() - began)

    async def fold_stats(self, drop_empty: bool = False) -> int:
        """Fold every stats delta waiting into the rollups, in background writes of a bounded
        size; how many rollup rows changed. `drop_empty` then deletes rows that count no job.
        """
        total = 0
        while changed := await self.store.fold_rollups():
            total += changed
        if drop_empty:
            await self.store.drop_empty_rollups()
        return total

    async def refresh_gauges(self) -> None:
        """Read the metrics gauges from the database (at scrape time)."""
        self.metrics.set_gauges(await self.store.gauges())

    @trace_method
    async def list_callbacks(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        """Every delivery attempt of the job's webhooks, oldest first."""
        return await self.store.list_attempts(actor, job_id)

    @trace_method
    async def retry_callback(self, actor: Actor, job_id: str) -> str:
        """Send the job's callback again, with the same webhook-id (which it returns)."""
        webhook_id = await self.store.requeue_callback(actor, job_id, self._now())
        self._wake()
        return webhook_id

    async def _check_callback(self, url: str | None) -> None:
        if url is not None:
            await guard.check(url, self._allow_private)

    def _wake(self) -> None:
        if self._notify is not None:
            self._notify()

    def _events_written(self) -> None:
        if self.on_events is not None:
            self.on_events()

    async def record_batch_poll(self, claimed: Claimed, planner: Planner, poll: Polled) -> Job:
        """Apply one batch poll's change to its job (see `batches.record_poll`)."""
        poller = Actor(claimed.organization_id, POLLER, is_admin=True)
        return await self._apply(poller, claimed.job_id, planner, poll)

    async def _apply(
        self,
        actor: Actor,
        job_id: str,
        planner: Planner,
        poll: Polled | None = None,
    ) -> Job:
        """Apply `planner`'s change to the job (and, given, record a poll of its batch)."""
        self.handling.add(job_id)
        try:
            # The trace context is captured here, in the request's task, and only written out
            # as headers if the change ends the job with a callback to send.
            trace = otel_context.get_current()
            planner = partial(_with_callback, planner, self._now(), trace)
            if poll is None:
                job, plan = await self.store.apply(actor, job_id, planner)
            else:
                job, plan = await self.store.record_batch_poll(actor, job_id, planner, poll)
        finally:
            self.handling.discard(job_id)
        if plan.event is not None or "heartbeat_at" in plan.values:
            self._events_written()  # a heartbeat too: streams may want it
        if plan.error is not None:
            raise plan.error
        self.metrics.applied(job, plan)
        if plan.outbox:
            self._wake()
        if plan.ends_job and job.job_type == BATCH_JOB_TYPE and actor.user_id != POLLER:
            # The poller tells the provider (a cancel) or stops following (any other end).
            await self.store.poll_batch_soon(job.id, self._now())
            self.batches_due.set()
        return job


def _with_stuck_alert(planner: Callable[[Job], Plan], url: str | None, job: Job) -> Plan:
    """`planner`'s plan, plus a `job.stuck` alert when it flags the job stuck."""
    plan = planner(job)
    flagged = plan.values.get("stuck_since")
    if url is None or flagged is None:
        return plan
    data = {
        "job_id": job.id,
        "job_type": job.job_type,
        "organization_id": job.organization_id,
        "stuck_since": payload.timestamp(flagged),
        "heartbeat_timeout_s": job.heartbeat_timeout_s,
    }
    return replace(
        plan, outbox=(*plan.outbox, payload.alert(url, payload.JOB_STUCK, data, flagged))
    )


def _with_callback(
    planner: Callable[[Job], Plan], now: datetime, trace: otel_context.Context, job: Job
) -> Plan:
    """`planner`'s plan, plus the job's callback when the plan ends a job that has one."""
    plan = planner(job)
    if not plan.ends_job:
        return plan
    ended = replace(job, **plan.values)
    if ended.callback_url is None:
        return plan
    message = replace(payload.callback(ended, now), trace_context=trace_headers(trace))
    return replace(plan, outbox=(*plan.outbox, message))


def _required(name: str, value: int | None) -> int:
    checked = check_duration(name, value)
    if checked is None:
        raise ValidationError(f"{name} is required")
    return checked
