"""The bodies of the webhooks jobpulse sends, built from domain objects. Pure."""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any

from jobpulse.domain import Job, OutboxMessage

#: The event type of a job's callback, by its terminal status.
JOB_EVENTS = {
    "completed": "job.completed",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
    "expired": "job.expired",
}
STEP_COMPLETED = "step.completed"
CALLBACK_EXHAUSTED = "callback.exhausted"
JOB_STUCK = "job.stuck"
#: An alert rule starts to fire, and stops (alerts/).
ALERT_FIRING = "alert.firing"
ALERT_RESOLVED = "alert.resolved"
#: Alerts for the operator: an exhausted delivery of one raises no further alert.
OPERATOR_ALERTS = frozenset({CALLBACK_EXHAUSTED, JOB_STUCK, ALERT_FIRING, ALERT_RESOLVED})


def new_webhook_id() -> str:
    """A webhook id (the same on every retry of one message)."""
    return f"msg_{uuid.uuid4().hex}"


def timestamp(moment: datetime) -> str:
    """ISO 8601 with a Z."""
    return moment.isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, Enum):
        return value.value
    return value


def job_data(job: Job) -> dict[str, Any]:
    """The full job as JSON-ready data, as the API shows it."""
    return {f.name: _plain(getattr(job, f.name)) for f in fields(job)}


def callback(job: Job, now: datetime) -> OutboxMessage:
    """The callback of a job that has just ended (Letta's keys, Standard Webhooks envelope)."""
    assert job.callback_url is not None
    event_type = JOB_EVENTS[job.status.value]
    payload = {
        "type": event_type,
        "timestamp": timestamp(now),
        "job_id": job.id,
        "status": job.status.value,
        "stop_reason": _plain(job.stop_reason),
        "completed_at": _plain(job.completed_at),
        "metadata": job.metadata,
        "data": job_data(job),
    }
    return OutboxMessage(new_webhook_id(), event_type, job.callback_url, payload, now, job.id)


def step(
    url: str, job_id: str, step_id: str, status: str, metadata: dict[str, Any], now: datetime
) -> OutboxMessage:
    """The step-complete webhook."""
    payload = {
        "step_id": step_id,
        "job_id": job_id,
        "status": status,
        "timestamp": timestamp(now),
        "metadata": metadata,
    }
    return OutboxMessage(new_webhook_id(), STEP_COMPLETED, url, payload, now, job_id)


def alert(url: str, event_type: str, data: dict[str, Any], now: datetime) -> OutboxMessage:
    """An operator alert (`job.stuck`, `callback.exhausted`)."""
    payload = {"type": event_type, "timestamp": timestamp(now), "data": data}
    # Not filed under the job: an alert is for the operator, not one of the job's callbacks.
    return OutboxMessage(new_webhook_id(), event_type, url, payload, now)
