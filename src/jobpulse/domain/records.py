"""The domain's records: who asks (`Actor`), a job as stored, its history events, a
requested change, and the webhook messages a change sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from jobpulse.domain.rules import (
    JobStatus,
    StopReason,
)


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

    def changed(self, values: Mapping[str, Any]) -> Job:
        """This job with `values` (fields by name) in place of its own: `dataclasses.replace`
        in a third of its time (every transition makes one), copied slot by slot.
        """
        job: Job = object.__new__(Job)
        for put, value in zip(_PUT, _FIELDS_OF(self), strict=True):
            put(job, value)
        for name, value in values.items():
            _PUT_NAMED[name](job, value)
        return job


#: Each field of a Job, read at once, and each one's slot written (a frozen dataclass refuses
#: setattr; its slots do not).
_FIELD_NAMES = tuple(field.name for field in fields(Job))
_FIELDS_OF = attrgetter(*_FIELD_NAMES)
_PUT_NAMED: dict[str, Callable[[Job, Any], None]] = {
    name: getattr(Job, name).__set__ for name in _FIELD_NAMES
}
_PUT = tuple(_PUT_NAMED[name] for name in _FIELD_NAMES)


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
