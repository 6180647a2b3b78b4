"""What an executor's lifecycle event says about its job, as data: a `Report`, and the pure
rules that turn it into an entry of POST /v1/jobs/reports (`entry`): the job to create if its
task has none yet (`creation`) and the change to apply (`change`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The longest error message kept in a job's metadata.
MESSAGE_LIMIT = 2000


class Kind(enum.Enum):
    """The lifecycle events of a task, as every executor has them."""

    #: The task was sent to the broker: its job is created `pending`.
    PUBLISHED = "published"
    #: A worker began the task: `running` (created running if the publisher did not report).
    STARTED = "started"
    #: The task returned: `completed`.
    SUCCEEDED = "succeeded"
    #: The task raised: `failed`, stop reason `error`, the exception in metadata.
    FAILED = "failed"
    #: The task will run again: a history note, `metadata.attempts`; the job stays running.
    RETRIED = "retried"
    #: The task was revoked (or aborted) before or while it ran: `cancelled`.
    REVOKED = "revoked"
    #: The task says it is alive (`metadata` is its progress).
    HEARTBEAT = "heartbeat"


#: The events that end a job.
ENDINGS = frozenset({Kind.SUCCEEDED, Kind.FAILED, Kind.REVOKED})
#: The events after which the task is running in this process (its liveness is reported).
RUNNING = frozenset({Kind.STARTED, Kind.RETRIED, Kind.HEARTBEAT})


@dataclass(slots=True)
class Report:
    """One lifecycle event of one task, as the executor's hook saw it (made on the task's
    path: a plain slotted object, a fifth of the cost of a frozen one; never changed).
    """

    kind: Kind
    #: The executor's id of the task: the job's idempotency key.
    task_id: str
    #: The task's name: the job type unless `job_type` is given.
    task_name: str
    job_type: str | None = None
    #: Merged into the job's metadata (the task id is always added).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: A note for the job's history (a retry's reason, a revocation's cause).
    reason: str | None = None
    #: The publisher reports this task too (it marked the message): the job is created
    #: `pending` by whichever report comes first, so its history is the same either way.
    publisher_reports: bool = False
    #: When the hook saw it (time.monotonic()): how long reporting took is measured from here.
    at: float = field(default_factory=time.monotonic)


def error_metadata(error: BaseException) -> dict[str, str]:
    """`error_type` and `error_message` of a failed task."""
    return {"error_type": type(error).__qualname__, "error_message": str(error)[:MESSAGE_LIMIT]}


def creation(
    report: Report, executor: str, heartbeat_timeout_s: float | None = None
) -> dict[str, Any]:
    """The body of POST /v1/jobs that makes the job of `report`'s task if it does not exist
    yet: `pending` when it is published, revoked before it ran or its publisher reports too,
    `running` otherwise (a worker alone is instrumented).
    """
    waiting = report.publisher_reports or report.kind in (Kind.PUBLISHED, Kind.REVOKED)
    body: dict[str, Any] = {
        "job_type": report.job_type or report.task_name,
        "status": "pending" if waiting else "running",
        "metadata": {**report.metadata, f"{executor}_task_id": report.task_id},
    }
    if heartbeat_timeout_s is not None:
        body["heartbeat_timeout_s"] = heartbeat_timeout_s
    return body


def change(report: Report) -> dict[str, Any] | None:
    """The update (PATCH's fields) that applies `report` to its job, or None when there is
    nothing to change. jobpulse takes a reported status the job is in already as no move
    (a task started by a worker alone was created running), and changes no ended job.
    """
    metadata = dict(report.metadata) or None
    if report.kind is Kind.STARTED:
        return _without_none({"status": "running", "metadata": metadata})
    if report.kind is Kind.SUCCEEDED:
        return _without_none({"status": "completed", "metadata": metadata})
    if report.kind is Kind.FAILED:
        return _without_none({"stop_reason": "error", "metadata": metadata})
    if report.kind is Kind.RETRIED:
        return _without_none({"metadata": metadata, "reason": report.reason})
    if report.kind is Kind.REVOKED:
        cancel = {"status": "cancelled", "stop_reason": "cancelled", "reason": report.reason}
        return _without_none(cancel)
    return None


def entry(
    report: Report, executor: str, heartbeat_timeout_s: float | None = None
) -> dict[str, Any]:
    """The entry of POST /v1/jobs/reports that applies `report` to its task's job."""
    body: dict[str, Any] = {
        "idempotency_key": report.task_id,
        "job": creation(report, executor, heartbeat_timeout_s),
    }
    if report.kind is Kind.HEARTBEAT:
        body["heartbeat"] = {"progress": dict(report.metadata)} if report.metadata else {}
    elif (update := change(report)) is not None:
        body["update"] = update
    return body


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
