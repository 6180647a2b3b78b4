"""plan_sweep: deadlines, stuck flags and heartbeat loss, as pure decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jobpulse.domain import SWEEPER, Job, JobStatus, StopReason, plan_sweep

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = JobStatus


def job(**fields: object) -> Job:
    base = Job(
        id="job-1",
        organization_id="o",
        user_id="u",
        job_type="t",
        status=S.RUNNING,
        created_at=T0,
        updated_at=T0,
        started_at=T0,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("status", [S.CREATED, S.PENDING, S.RUNNING])
def test_past_deadline_expires_with_timeout(status: JobStatus) -> None:
    plan = plan_sweep(job(status=status, deadline_at=at(10)), at(10))
    assert (plan.values["status"], plan.values["stop_reason"]) == (S.EXPIRED, StopReason.TIMEOUT)
    assert plan.event is not None
    assert plan.event.actor == SWEEPER


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.CANCELLED, S.EXPIRED])
def test_ended_jobs_are_left_alone(status: JobStatus) -> None:
    plan = plan_sweep(job(status=status, deadline_at=at(1), heartbeat_timeout_s=1), at(100))
    assert (plan.values, plan.event) == ({}, None)


def test_before_the_deadline_nothing_happens() -> None:
    assert plan_sweep(job(deadline_at=at(10)), at(9.9)).values == {}


def test_silence_flags_then_expires() -> None:
    watched = job(heartbeat_timeout_s=30, heartbeat_at=at(20))
    assert plan_sweep(watched, at(49)).values == {}  # 29 s since the last beat
    flagged = plan_sweep(watched, at(50))
    assert flagged.values == {"stuck_since": at(50), "updated_at": at(50)}
    assert flagged.event is not None
    assert flagged.event.to_status == S.RUNNING
    assert "stuck" in (flagged.event.reason or "")
    stuck = replace(watched, stuck_since=at(50))
    assert plan_sweep(stuck, at(79)).values == {}
    lost = plan_sweep(stuck, at(80))
    assert (lost.values["status"], lost.values["stop_reason"]) == (
        S.EXPIRED,
        StopReason.HEARTBEAT_LOST,
    )


def test_silence_counts_from_the_start_without_heartbeats() -> None:
    assert plan_sweep(job(heartbeat_timeout_s=5), at(5)).values["stuck_since"] == at(5)


@pytest.mark.parametrize("status", [S.CREATED, S.PENDING])
def test_only_running_jobs_need_heartbeats(status: JobStatus) -> None:
    assert (
        plan_sweep(job(status=status, started_at=None, heartbeat_timeout_s=1), at(60)).values == {}
    )
