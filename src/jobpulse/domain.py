"""The job state machine and the rules around it, as data plus pure functions.

Nothing here does I/O or reads the clock: callers pass `now`. Storage asks `plan_*`
what to write for a job it has locked, and writes exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from jobpulse.documents import check_document, check_size
from jobpulse.errors import (
    InvalidTransitionError,
    JobCancelledError,
    JobPulseError,
    ValidationError,
)

_E = TypeVar("_E", bound=StrEnum)
#: The longest timeout_s and heartbeat_timeout_s a job can have.
TIMEOUT_MAX_S = 10 * 365 * 86400
HEARTBEAT_TIMEOUT_MAX_S = 365 * 86400


class JobStatus(StrEnum):
    """Where a job is in its life."""

    #: Known to jobpulse, not yet queued.
    CREATED = "created"
    #: Queued, waiting for a worker.
    PENDING = "pending"
    #: A worker is on it.
    RUNNING = "running"
    #: Finished as intended.
    COMPLETED = "completed"
    #: Finished with an error.
    FAILED = "failed"
    #: Stopped on request.
    CANCELLED = "cancelled"
    #: Stopped by jobpulse: past its deadline or silent too long.
    EXPIRED = "expired"


class StopReason(StrEnum):
    """Why a job stopped (the names of Letta's stop reasons)."""

    END_TURN = "end_turn"
    MAX_STEPS = "max_steps"
    TOOL_RULE = "tool_rule"
    REQUIRES_APPROVAL = "requires_approval"
    ERROR = "error"
    INVALID_TOOL_CALL = "invalid_tool_call"
    NO_TOOL_CALL = "no_tool_call"
    INVALID_LLM_RESPONSE = "invalid_llm_response"
    LLM_API_ERROR = "llm_api_error"
    MAX_TOKENS_EXCEEDED = "max_tokens_exceeded"
    CONTEXT_WINDOW_OVERFLOW_IN_SYSTEM_PROMPT = "context_window_overflow_in_system_prompt"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    HEARTBEAT_LOST = "heartbeat_lost"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)
ACTIVE: frozenset[JobStatus] = frozenset(JobStatus) - TERMINAL
#: The statuses a job may be created in.
INITIAL: frozenset[JobStatus] = ACTIVE

#: Every allowed move: from a status to the statuses it may enter.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.CREATED: frozenset({JobStatus.PENDING, JobStatus.RUNNING}) | TERMINAL,
    JobStatus.PENDING: frozenset({JobStatus.RUNNING}) | TERMINAL,
    JobStatus.RUNNING: TERMINAL,
    **{status: frozenset() for status in TERMINAL},
}

#: The status each stop reason implies.
STOP_REASON_STATUS: dict[StopReason, JobStatus] = {
    **dict.fromkeys(
        (
            StopReason.END_TURN,
            StopReason.MAX_STEPS,
            StopReason.TOOL_RULE,
            StopReason.REQUIRES_APPROVAL,
        ),
        JobStatus.COMPLETED,
    ),
    **dict.fromkeys(
        (
            StopReason.ERROR,
            StopReason.INVALID_TOOL_CALL,
            StopReason.NO_TOOL_CALL,
            StopReason.INVALID_LLM_RESPONSE,
            StopReason.LLM_API_ERROR,
            StopReason.MAX_TOKENS_EXCEEDED,
            StopReason.CONTEXT_WINDOW_OVERFLOW_IN_SYSTEM_PROMPT,
            StopReason.INSUFFICIENT_CREDITS,
        ),
        JobStatus.FAILED,
    ),
    StopReason.CANCELLED: JobStatus.CANCELLED,
    StopReason.TIMEOUT: JobStatus.EXPIRED,
    StopReason.HEARTBEAT_LOST: JobStatus.EXPIRED,
}


def _parse_enum(kind: type[_E], value: object, what: str) -> _E:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValidationError(f"unknown {what} {value!r}; expected one of: {allowed}") from None


def parse_status(value: object) -> JobStatus:
    """The status named by `value`, exactly as spelled on the wire."""
    return _parse_enum(JobStatus, value, "status")


def parse_stop_reason(value: object) -> StopReason:
    """The stop reason named by `value`, exactly as spelled on the wire."""
    return _parse_enum(StopReason, value, "stop_reason")


def allowed_sources(target: JobStatus) -> frozenset[JobStatus]:
    """The statuses from which a job may enter `target`."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether a job in `current` may enter `target`."""
    return target in TRANSITIONS[current]


def check_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise InvalidTransitionError unless a job in `current` may enter `target`."""
    if can_transition(current, target):
        return
    kind = JobCancelledError if current == JobStatus.CANCELLED else InvalidTransitionError
    if current in TERMINAL:
        why = f"job is already {current}; terminal jobs never change"
    elif target == JobStatus.CREATED:
        why = "no job can return to created"
    elif target == current:
        why = f"job is already {current}"
    else:
        why = f"a {current} job cannot go back to {target}"
    raise kind(
        f"cannot move from {current} to {target}: {why}",
        current_status=current,
        requested_status=target,
    )


def resolve_outcome(status: JobStatus | None, stop_reason: StopReason | None) -> JobStatus | None:
    """The status to enter: the given one, or the one the stop reason implies.

    A stop reason that contradicts the given status is a ValidationError.
    """
    if stop_reason is None:
        return status
    implied = STOP_REASON_STATUS[stop_reason]
    if status is not None and status != implied:
        raise ValidationError(f"stop_reason {stop_reason} means status {implied}, not {status}")
    return implied


def check_metadata(value: object, what: str = "metadata") -> dict[str, Any]:
    """`value` as a metadata object: a document under the JSON policy of `documents`."""
    return check_document(value, what)


def merge_metadata(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge of `patch` into `current`; a key set to None is removed. ValidationError
    if the merged object outgrows 64 KiB (each patch may fit while their sum does not).
    """
    merged = {**current, **patch}
    merged = {key: value for key, value in merged.items() if value is not None}
    check_size(merged, "metadata once merged")
    return merged


def check_duration(name: str, value: object) -> int | None:
    """`value` as a nanosecond count: None or a non-negative integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer number of nanoseconds")
    if value < 0:
        raise ValidationError(f"{name} must not be negative, got {value}")
    return value


def to_utc(name: str, value: datetime) -> datetime:
    """`value` in UTC; ValidationError for a naive moment or one UTC cannot hold."""
    if value.tzinfo is None:
        raise ValidationError(f"{name} needs a timezone (use UTC, e.g. 2026-01-01T00:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(f"{name} is out of range in UTC (years 1 to 9999)") from None


def elapsed_ns(start: datetime, end: datetime) -> int:
    """Nanoseconds from `start` to `end`, never negative."""
    delta = end - start
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return max(micros, 0) * 1_000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking: a member sees its own jobs, an admin its whole organization."""

    organization_id: str
    user_id: str
    is_admin: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored."""

    id: str
    organization_id: str
    user_id: str
    job_type: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    stop_reason: StopReason | None = None
    background: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    callback_sent_at: datetime | None = None
    callback_status_code: int | None = None
    callback_error: str | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    deadline_at: datetime | None = None
    heartbeat_timeout_s: float | None = None
    stuck_since: datetime | None = None
    #: Seconds it may stay unchanged while active before it is stuck (the defaults without).
    stale_after_s: float | None = None
    #: The LLM calls' token and cost totals (jobpulse.usage.rules), None before the first.
    usage: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's history: an applied transition or a rejected attempt."""

    job_id: str
    from_status: JobStatus | None
    to_status: JobStatus
    at: datetime
    applied: bool = True
    stop_reason: StopReason | None = None
    reason: str | None = None
    actor: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class JobChange:
    """What a caller asks to change on a job; None leaves a field as it is."""

    status: JobStatus | None = None
    stop_reason: StopReason | None = None
    metadata: dict[str, Any] | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None
    callback_url: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A webhook to send, written in the same transaction as the change that caused it."""

    webhook_id: str
    event_type: str
    url: str
    payload: dict[str, Any]
    created_at: datetime
    job_id: str | None = None
    #: The W3C trace context of the request that caused it, continued by the delivery.
    trace_context: dict[str, str] | None = None


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
