"""The rules of a bulk action: its result, its batch size, what a cancel may touch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from jobpulse.domain import ACTIVE, Job, JobStatus, Plan
from jobpulse.errors import InvalidTransitionError
from jobpulse.listing import JobFilter

#: Jobs one step reads and acts on, in one short transaction.
BATCH_SIZE = 200
#: The reason written in the history of a job cancelled in bulk, unless the caller gives one.
BULK_REASON = "cancelled in bulk"


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action found and did: `changed` of the `matched` jobs; the others were
    skipped (already ended, or with nothing to re-send).
    """

    matched: int
    changed: int

    @property
    def skipped(self) -> int:
        """Matched but left as they were."""
        return self.matched - self.changed


def only_active(planner: Callable[[Job], Plan], job: Job) -> Plan:
    """`planner`'s plan for a job still active; a job that ended since it was read is
    refused without a history entry (a bulk cancel skips it, it did not try it).
    """
    if job.status not in ACTIVE:
        raise InvalidTransitionError(
            f"job is already {job.status.value}",
            current_status=job.status.value,
            requested_status=JobStatus.CANCELLED.value,
        )
    return planner(job)


def bounded(query: JobFilter, now: datetime) -> JobFilter:
    """`query` limited to the jobs created by `now`, so that a bulk action ends even while
    matching jobs keep arriving.
    """
    edge = now + timedelta(microseconds=1)
    if query.created_before is not None and query.created_before <= edge:
        return query
    if query.created_after is not None and query.created_after > edge:
        return query  # nothing created yet matches; the action finds none
    return replace(query, created_before=edge)
