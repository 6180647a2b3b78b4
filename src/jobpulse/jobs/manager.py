"""JobManager: the only writer of jobs. Each change, its history event and its webhooks
commit in one transaction, guarded by a compare-and-set on the status. Steps and webhooks are
in steps.py and callbacks.py beside it; the features (sweeper, stats, retention, batches) work
through a manager from their own packages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypedDict, Unpack

from opentelemetry import context as otel_context

from jobpulse.batches.rules import BATCH_JOB_TYPE, POLLER, batch_ref
from jobpulse.clock import utcnow
from jobpulse.config import Settings
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
from jobpulse.gate import ReadGate
from jobpulse.jobs import callbacks, checks, steps
from jobpulse.jobs.hooks import Hooks
from jobpulse.listing import JobFilter, Page
from jobpulse.metrics import Metrics
from jobpulse.storage.batches import Claimed, Polled
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.store import JobStore, Planner
from jobpulse.telemetry import trace_method
from jobpulse.webhooks import guard


class ChangeFields(TypedDict, total=False):
    """The fields of a change (PATCH /v1/jobs/{id}); those absent stay as they are."""

    status: str | None
    stop_reason: str | None
    metadata: Mapping[str, Any] | None
    ttft_ns: int | None
    total_duration_ns: int | None
    callback_url: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class JobCount:
    """How many jobs match a filter, in all and per status."""

    total: int
    by_status: dict[JobStatus, int]


class JobManager:
    """Creates, changes, lists and deletes jobs, enforcing the state machine."""

    def __init__(
        self,
        store: JobStore,
        clock: Callable[[], datetime] = utcnow,
        *,
        allow_private_callbacks: bool = False,
        hooks: Hooks | None = None,
        step_webhook: str | None = None,
        metrics: Metrics | None = None,
        reads: ReadGate | None = None,
    ) -> None:
        self.store = store
        #: Turns for listings, counts and figures (see gate.py); the default settings without one.
        self.reads = reads or ReadGate.from_settings(
            Settings.model_construct(), store.traffic.recent
        )
        self._now = clock
        self._allow_private = allow_private_callbacks
        self._step_webhook = step_webhook
        self.metrics = metrics or Metrics()
        #: The jobs whose changes are in flight (the watchdog names them on a stall).
        self.handling: set[str] = set()
        #: Who is told of commits: the delivery worker, the live feed, the batch poller.
        self.hooks = hooks or Hooks()

    @classmethod
    def from_settings(
        cls, settings: Settings, hooks: Hooks | None = None, *, store: JobStore | None = None
    ) -> JobManager:
        """A manager on `store`, or the database `settings` names (already migrated)."""
        store = store or open_store(settings)
        return cls(
            store,
            allow_private_callbacks=settings.webhook_allow_private,
            hooks=hooks,
            step_webhook=settings.step_complete_webhook,
            metrics=Metrics(settings.metrics_job_types_max),
            reads=ReadGate.from_settings(settings, store.traffic.recent),
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
        checks.printable("job_type", job_type)
        checks.printable("Idempotency-Key", idempotency_key)
        if timeout_s is not None and deadline_at is not None:
            raise ValidationError("give timeout_s or deadline_at, not both")
        now = self._now()
        timeout = checks.seconds("timeout_s", timeout_s, TIMEOUT_MAX_S)
        job = Job(
            id=f"job-{uuid.uuid4()}",
            organization_id=actor.organization_id,
            user_id=actor.user_id,
            job_type=job_type,
            status=initial,
            created_at=now,
            updated_at=now,
            background=bool(background),
            metadata=check_metadata(metadata) if metadata is not None else {},
            callback_url=checks.callback_url(callback_url),
            started_at=now if initial == JobStatus.RUNNING else None,
            deadline_at=(deadline_at and to_utc("deadline_at", deadline_at))
            or (now + timedelta(seconds=timeout) if timeout else None),
            heartbeat_timeout_s=checks.seconds(
                "heartbeat_timeout_s", heartbeat_timeout_s, HEARTBEAT_TIMEOUT_MAX_S
            ),
            stale_after_s=checks.seconds("stale_after_s", stale_after_s, TIMEOUT_MAX_S),
        )
        await self._check_callback(job.callback_url)
        if job_type == BATCH_JOB_TYPE:
            ref = batch_ref(job.metadata)
            stored, created = await self.store.create_batch_job(job, idempotency_key, ref)
        else:
            stored, created = await self.store.create(job, idempotency_key)
        if created:
            self.metrics.created(stored)
            self.hooks.events_written()
        return stored

    @trace_method
    async def get_job(self, actor: Actor, job_id: str) -> Job:
        """The job, if the actor may see it (NotFoundError otherwise)."""
        return await self.store.get(actor, job_id)

    @trace_method
    async def update_job(self, actor: Actor, job_id: str, **fields: Unpack[ChangeFields]) -> Job:
        """Apply a guarded change: status, stop reason, metadata merge, timings."""
        change = await self.check_change(**fields)
        return await self._apply(
            actor, job_id, partial(plan_change, change=change, now=self._now(), actor=actor.user_id)
        )

    async def check_change(self, **fields: Unpack[ChangeFields]) -> JobChange:
        """The change `fields` ask for, checked as `update_job` checks them (ValidationError;
        a callback URL the guard refuses).
        """
        status, stop_reason = fields.get("status"), fields.get("stop_reason")
        metadata, reason = fields.get("metadata"), fields.get("reason")
        change = JobChange(
            status=None if status is None else parse_status(status),
            stop_reason=None if stop_reason is None else parse_stop_reason(stop_reason),
            metadata=None if metadata is None else check_metadata(metadata),
            ttft_ns=check_duration("ttft_ns", fields.get("ttft_ns")),
            total_duration_ns=check_duration("total_duration_ns", fields.get("total_duration_ns")),
            callback_url=checks.callback_url(fields.get("callback_url")),
            reason=reason,
        )
        checks.printable("reason", reason)
        await self._check_callback(change.callback_url)
        return change

    async def apply(self, actor: Actor, job_id: str, planner: Planner) -> Job:
        """Apply a feature's planner to the job (see reports/), as `update_job` applies its
        change: guarded, its callback queued, the history and metrics told.
        """
        return await self._apply(actor, job_id, planner)

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
        return await self.update_job(actor, job_id, ttft_ns=checks.required("ttft_ns", ttft_ns))

    async def record_duration(self, actor: Actor, job_id: str, total_duration_ns: int) -> Job:
        """Set the total duration the caller measured."""
        duration = checks.required("total_duration_ns", total_duration_ns)
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
        step, queued = await steps.record_step(
            self.store,
            actor,
            job_id,
            status=status,
            step_id=step_id,
            metadata=metadata,
            now=self._now(),
            webhook=self._step_webhook,
        )
        if queued:
            self.hooks.webhooks_queued()
        return step

    @trace_method
    async def list_steps(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        """The job's steps, oldest first."""
        return await steps.list_steps(self.store, actor, job_id)

    async def refresh_gauges(self) -> None:
        """Read the metrics gauges from the database (at scrape time)."""
        self.metrics.set_gauges(await self.store.gauges())

    @trace_method
    async def list_callbacks(self, actor: Actor, job_id: str) -> list[dict[str, Any]]:
        """Every delivery attempt of the job's webhooks, oldest first."""
        return await callbacks.list_callbacks(self.store, actor, job_id)

    @trace_method
    async def retry_callback(self, actor: Actor, job_id: str) -> str:
        """Send the job's callback again, with the same webhook-id (which it returns)."""
        webhook_id = await callbacks.retry_callback(self.store, actor, job_id, self._now())
        self.hooks.webhooks_queued()
        return webhook_id

    async def _check_callback(self, url: str | None) -> None:
        if url is not None:
            await guard.check(url, self._allow_private)

    def applied(self, changed: Sequence[tuple[Job, Plan]]) -> None:
        """Count changes a feature wrote through the store (the sweeper's) and tell whom they
        concern, as `update_job` does for its own.
        """
        for job, plan in changed:
            self.metrics.applied(job, plan)
        if any(plan.outbox for _job, plan in changed):
            self.hooks.webhooks_queued()
        if changed:
            self.hooks.events_written()

    async def record_batch_poll(self, claimed: Claimed, planner: Planner, poll: Polled) -> Job:
        """Apply one batch poll's change to its job (see batches/poller.py)."""
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
            planner = partial(callbacks.with_callback, planner, self._now(), trace)
            if poll is None:
                job, plan = await self.store.apply(actor, job_id, planner)
            else:
                job, plan = await self.store.record_batch_poll(actor, job_id, planner, poll)
        finally:
            self.handling.discard(job_id)
        if plan.event is not None or "heartbeat_at" in plan.values:
            self.hooks.events_written()  # a heartbeat too: streams may want it
        if plan.error is not None:
            raise plan.error
        self.metrics.applied(job, plan)
        if plan.outbox:
            self.hooks.webhooks_queued()
        if plan.ends_job and job.job_type == BATCH_JOB_TYPE and actor.user_id != POLLER:
            # The poller tells the provider (a cancel) or stops following (any other end).
            await self.store.poll_batch_soon(job.id, self._now())
            self.hooks.batch_ended()
        return job
