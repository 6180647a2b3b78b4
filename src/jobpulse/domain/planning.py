"""Pure planning: what to write for one request on a job storage has locked (`Plan`).

Nothing here does I/O or reads the clock: callers pass `now`. Storage asks `plan_*` what to
write and writes exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from jobpulse.domain.records import Job, JobChange, JobEvent, OutboxMessage
from jobpulse.domain.rules import (
    TERMINAL,
    JobStatus,
    check_transition,
    elapsed_ns,
    merge_metadata,
    resolve_outcome,
)
from jobpulse.errors import (
    InvalidTransitionError,
    JobCancelledError,
    JobPulseError,
    ValidationError,
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write for one request on a locked job.

    `values` are the columns to set, guarded by the job still being in `expected`;
    `event` goes to the history and `outbox` to the webhook outbox; `error`, if any, is
    raised after the event is stored.
    """

    expected: JobStatus
    values: dict[str, Any] = field(default_factory=dict)
    event: JobEvent | None = None
    error: JobPulseError | None = None
    outbox: tuple[OutboxMessage, ...] = ()

    @property
    def ends_job(self) -> bool:
        """Whether this plan moves the job into a terminal status."""
        return self.values.get("status") in TERMINAL


def plan_change(job: Job, change: JobChange, now: datetime, actor: str | None) -> Plan:
    """The writes `change` makes to `job` at `now`, or the rejected attempt it records."""
    values: dict[str, Any] = {}
    if change.metadata is not None:
        try:
            values["metadata"] = merge_metadata(job.metadata, change.metadata)
        except ValidationError as exc:
            return Plan(expected=job.status, error=exc)
    for name in ("ttft_ns", "total_duration_ns", "callback_url"):
        if (value := getattr(change, name)) is not None:
            values[name] = value
    target = resolve_outcome(change.status, change.stop_reason)
    if target is None:
        if values:
            values["updated_at"] = now
        return Plan(expected=job.status, values=values, event=_note(job, change, now, actor))
    event = JobEvent(
        job_id=job.id,
        from_status=job.status,
        to_status=target,
        at=now,
        stop_reason=change.stop_reason,
        reason=change.reason,
        actor=actor,
    )
    try:
        check_transition(job.status, target)
    except InvalidTransitionError as exc:
        return Plan(expected=job.status, event=replace(event, applied=False), error=exc)
    values |= {"status": target, "updated_at": now} | _stamps(job, change, target, now)
    return Plan(expected=job.status, values=values, event=event)


def _note(job: Job, change: JobChange, now: datetime, actor: str | None) -> JobEvent | None:
    """A change with a reason and no status is a note in the history of an active job (a
    retry, say): an event that keeps the status.
    """
    if change.reason is None or job.status in TERMINAL:
        return None
    return JobEvent(
        job_id=job.id,
        from_status=job.status,
        to_status=job.status,
        at=now,
        reason=change.reason,
        actor=actor,
    )


def _stamps(job: Job, change: JobChange, target: JobStatus, now: datetime) -> dict[str, Any]:
    """The fields entering `target` sets: stop reason, start, end and duration."""
    values: dict[str, Any] = {}
    if job.stuck_since is not None:
        values["stuck_since"] = None  # a job that moves is not stuck
    if change.stop_reason is not None:
        values["stop_reason"] = change.stop_reason
    if target == JobStatus.RUNNING and job.started_at is None:
        values["started_at"] = now
    if target in TERMINAL:
        values["completed_at"] = now
        if change.total_duration_ns is None and job.total_duration_ns is None:
            values["total_duration_ns"] = elapsed_ns(job.started_at or job.created_at, now)
    return values


def check_active(job: Job, what: str) -> InvalidTransitionError | None:
    """The error for `what` on a job that has already ended, if it has."""
    if job.status not in TERMINAL:
        return None
    kind = JobCancelledError if job.status == JobStatus.CANCELLED else InvalidTransitionError
    return kind(
        f"job is already {job.status}; {what} is accepted only while it is active",
        current_status=job.status,
        requested_status=None,
    )


def plan_heartbeat(
    job: Job, progress: dict[str, Any] | None, now: datetime, actor: str | None
) -> Plan:
    """A heartbeat: liveness stamped, progress merged, a stuck flag cleared with an event."""
    if (error := check_active(job, "a heartbeat")) is not None:
        return Plan(expected=job.status, error=error)
    values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    if progress:
        try:
            values["metadata"] = merge_metadata(job.metadata, progress)
        except ValidationError as exc:
            return Plan(expected=job.status, error=exc)
    event = None
    if job.stuck_since is not None:
        values["stuck_since"] = None
        event = JobEvent(
            job_id=job.id,
            from_status=job.status,
            to_status=job.status,
            at=now,
            reason="heartbeat resumed",
            actor=actor,
        )
    return Plan(expected=job.status, values=values, event=event)


def plan_first_token(job: Job, now: datetime) -> Plan:
    """Time to first token, measured once from the start (or creation) to `now`."""
    if (error := check_active(job, "a first token")) is not None:
        return Plan(expected=job.status, error=error)
    if job.ttft_ns is not None:
        return Plan(expected=job.status)
    ttft = elapsed_ns(job.started_at or job.created_at, now)
    return Plan(expected=job.status, values={"ttft_ns": ttft, "updated_at": now})
