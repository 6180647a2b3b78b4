"""The job state machine as data: statuses, stop reasons, the moves allowed between them,
and the checks every value of a job passes before it is planned.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from jobpulse.documents import check_document, check_size
from jobpulse.errors import (
    InvalidTransitionError,
    JobCancelledError,
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
