"""The pure rules of bulk actions and saved views, and the dashboard's reading of a batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from jobpulse.bulk.rules import BulkResult, bounded, only_active
from jobpulse.dashboard.batches import batch_row, left
from jobpulse.domain import (
    ACTIVE,
    Actor,
    Job,
    JobChange,
    JobStatus,
    StopReason,
    plan_change,
)
from jobpulse.errors import InvalidTransitionError, ValidationError
from jobpulse.listing import JobFilter
from jobpulse.views.rules import SavedView, check_view

NOW = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


def _job(status: JobStatus, **fields: object) -> Job:
    return Job(
        id="job-1",
        organization_id="org-a",
        user_id="alice",
        job_type="etl",
        status=status,
        created_at=NOW,
        updated_at=NOW,
        **fields,  # type: ignore[arg-type]
    )


CANCEL = partial(
    plan_change,
    change=JobChange(status=JobStatus.CANCELLED, stop_reason=StopReason.CANCELLED),
    now=NOW,
    actor="alice",
)


@pytest.mark.parametrize("status", list(JobStatus))
def test_only_active_jobs_are_planned_and_ended_ones_refused_without_an_attempt(
    status: JobStatus,
) -> None:
    if status in ACTIVE:
        plan = only_active(CANCEL, _job(status))
        assert plan.values["status"] == JobStatus.CANCELLED
        assert plan.event is not None
        assert plan.event.applied
    else:
        with pytest.raises(InvalidTransitionError) as refused:
            only_active(CANCEL, _job(status))
        assert refused.value.current_status == status.value


def test_a_bulk_action_is_bounded_to_the_jobs_created_by_its_start() -> None:
    edge = NOW + timedelta(microseconds=1)
    assert bounded(JobFilter(), NOW).created_before == edge
    earlier = NOW - timedelta(days=1)
    assert bounded(JobFilter(created_before=earlier), NOW).created_before == earlier
    later = NOW + timedelta(days=1)
    assert bounded(JobFilter(created_before=later), NOW).created_before == edge
    future = JobFilter(created_after=later)
    assert bounded(future, NOW) == future


def test_skipped_is_what_was_matched_and_not_changed() -> None:
    assert BulkResult(matched=7, changed=3).skipped == 4


def test_a_view_is_checked_and_seen_by_its_owner_or_its_organization() -> None:
    assert check_view("  Failed ETL ", "?job_type=etl&order=oldest") == (
        "Failed ETL",
        "job_type=etl&order=oldest",
    )
    for name, query in (("", "a"), ("x" * 129, ""), ("ok", "colour=red"), ("bad\x00", "")):
        with pytest.raises(ValidationError):
            check_view(name, query)
    view = SavedView("view-1", "org-a", "alice", "v", "", shared=False, created_at=NOW)
    assert view.is_visible_to(Actor("org-a", "alice"))
    assert not view.is_visible_to(Actor("org-a", "bob"))
    shared = SavedView("view-1", "org-a", "alice", "v", "", shared=True, created_at=NOW)
    assert shared.is_visible_to(Actor("org-a", "bob"))
    assert not shared.is_visible_to(Actor("org-b", "bob", is_admin=True))
    assert not shared.can_be_removed_by(Actor("org-a", "bob"))
    assert shared.can_be_removed_by(Actor("org-a", "root", is_admin=True))


def test_a_batch_reads_its_progress_and_expiry_from_its_metadata() -> None:
    metadata = {
        "provider": "anthropic",
        "batch_id": "msgbatch_1",
        "request_counts": {"processing": 5, "succeeded": 4, "errored": 1},
        "expires_at": (NOW + timedelta(hours=2, minutes=30)).isoformat(),
        "results_url": "https://example.org/results",
    }
    row = batch_row(_job(JobStatus.RUNNING, metadata=metadata), NOW)
    assert (row.done, row.total, row.percent) == (0, 10, 0)
    assert row.expires_in == "expires in 2 h 30 min"
    assert row.results == {"results_url": "https://example.org/results"}
    progressed = metadata | {"progress": {"done": 5, "total": 10}}
    assert batch_row(_job(JobStatus.RUNNING, metadata=progressed), NOW).percent == 50
    assert left(NOW - timedelta(minutes=5), NOW) == "expired 5 min ago"
    assert left(None, NOW) is None
    broken = batch_row(_job(JobStatus.RUNNING, metadata={"progress": "lots"}), NOW)
    assert (broken.done, broken.total, broken.expires_in) == (0, 0, None)
