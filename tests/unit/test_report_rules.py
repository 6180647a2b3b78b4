"""The pure rules of a report (reports/rules.py), over every pair of a job's status and the
status a report names: a status held already is no move, an ended job takes nothing, the
rest is PATCH's rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jobpulse.domain import (
    TERMINAL,
    Job,
    JobChange,
    JobStatus,
    can_transition,
    plan_change,
)
from jobpulse.errors import InvalidTransitionError, JobCancelledError
from jobpulse.reports.rules import is_nothing, plan_report

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def _job(status: JobStatus, metadata: dict[str, Any] | None = None) -> Job:
    return Job(
        id="job-1",
        organization_id="org-a",
        user_id="alice",
        job_type="etl",
        status=status,
        created_at=NOW,
        updated_at=NOW,
        metadata=metadata or {},
    )


def _plan(job: Job, change: JobChange) -> Any:
    return plan_report(job, change, NOW, "alice")


TARGETS = [None, *JobStatus]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("status", list(JobStatus))
def test_every_pair_of_a_status_and_a_reported_one(
    status: JobStatus, target: JobStatus | None
) -> None:
    job = _job(status, {"a": 1})
    change = JobChange(status=target, metadata={"b": 2}, reason="note")
    plan = _plan(job, change)
    if status in TERMINAL:
        # An ended job takes nothing, and nothing is recorded.
        assert (plan.values, plan.event, plan.outbox) == ({}, None, ())
        if target == status:
            assert plan.error is None
        else:
            kind = JobCancelledError if status == JobStatus.CANCELLED else InvalidTransitionError
            assert type(plan.error) is kind
            assert (plan.error.current_status, plan.error.requested_status) == (status, target)
        return
    if target is None or target == status:
        # No move: the metadata and the note apply, as to a job that keeps its status.
        assert plan.error is None
        assert plan.values["metadata"] == {"a": 1, "b": 2}
        assert "status" not in plan.values
        assert plan.event is not None
        assert (plan.event.from_status, plan.event.to_status, plan.event.reason) == (
            status,
            status,
            "note",
        )
        return
    # Any other move is PATCH's: applied where the table allows it, refused (and recorded
    # as a rejected attempt) where it does not.
    patched = plan_change(job, change, NOW, "alice")
    assert (plan.values, plan.event, plan.outbox) == (patched.values, patched.event, ())
    assert (plan.error is None) == can_transition(status, target)
    if plan.error is not None:
        assert patched.error is not None
        assert (plan.error.code, plan.error.details) == (patched.error.code, patched.error.details)
        assert plan.event is not None
        assert not plan.event.applied


@pytest.mark.parametrize(
    ("held", "patch", "nothing"),
    [
        ({"a": 1}, {"a": 1}, True),
        ({"a": 1, "b": [1, {"c": None}]}, {"b": [1, {"c": None}]}, True),
        ({}, {"gone": None}, True),
        ({"a": 1}, {"a": 1.0}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": [1]}, {"a": [True]}, False),
        ({"a": {"x": 1}}, {"a": {"x": 1, "y": 2}}, False),
        ({"a": 1}, {"a": None}, False),
        ({"a": 1}, {"b": 1}, False),
    ],
)
def test_metadata_held_already_is_not_written_again(
    held: dict[str, Any], patch: dict[str, Any], nothing: bool
) -> None:
    plan = _plan(_job(JobStatus.RUNNING, held), JobChange(status=JobStatus.RUNNING, metadata=patch))
    assert is_nothing(plan) is nothing
    if not nothing:
        assert plan.values["metadata"] == {
            k: v for k, v in {**held, **patch}.items() if v is not None
        }
