"""The rules of a report (POST /v1/jobs/reports): how the report of what a task did applies
to its job. A report says what happened rather than asking for a move, so saying it twice
changes nothing twice, and a report that comes after its job ended changes nothing. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from jobpulse.domain import (
    TERMINAL,
    Job,
    JobChange,
    JobStatus,
    Plan,
    plan_change,
    resolve_outcome,
)
from jobpulse.errors import InvalidTransitionError, JobCancelledError

#: The most reports one request may carry.
MAX_REPORTS = 500


def plan_report(job: Job, change: JobChange, now: datetime, actor: str | None) -> Plan:
    """The writes `change`, reported, makes to `job`: as PATCH's (`plan_change`), except that
    the status the job is in already is no move (its metadata and note still apply), metadata
    the job holds already is not written again, and an ended job takes nothing: a report of
    the status it ended in is answered with it, any other is refused without a history entry
    (InvalidTransitionError, JobCancelledError for a cancelled job).
    """
    target = resolve_outcome(change.status, change.stop_reason)
    if target == job.status:
        if job.status in TERMINAL:
            return Plan(expected=job.status)
        change = replace(change, status=None, stop_reason=None)
    elif job.status in TERMINAL:
        return Plan(expected=job.status, error=_ended(job.status, target))
    if change.metadata is not None and _holds(job.metadata, change.metadata):
        change = replace(change, metadata=None)
    return plan_change(job, change, now, actor)


def is_nothing(plan: Plan) -> bool:
    """Whether `plan` writes nothing and refuses nothing (its job is answered as it is)."""
    return not plan.values and plan.event is None and plan.error is None and not plan.outbox


def _ended(status: JobStatus, target: JobStatus | None) -> InvalidTransitionError:
    kind = JobCancelledError if status == JobStatus.CANCELLED else InvalidTransitionError
    wanted = "a report" if target is None else f"a report of {target}"
    return kind(
        f"job is already {status}; {wanted} changes nothing",
        current_status=status,
        requested_status=target,
    )


def _holds(metadata: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether merging `patch` into `metadata` would leave it exactly as it is."""
    return all(
        key not in metadata if value is None else key in metadata and _same(metadata[key], value)
        for key, value in patch.items()
    )


def _same(left: object, right: object) -> bool:
    """Equal as JSON documents: of one type at every level (1, 1.0 and true differ)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(map(_same, left, right))
    return left == right
