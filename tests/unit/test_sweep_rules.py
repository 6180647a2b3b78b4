"""plan_sweep: deadlines, stuck flags and heartbeat loss, as pure decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jobpulse.config import Settings
from jobpulse.domain import Job, JobChange, JobStatus, StopReason, plan_change
from jobpulse.sweeper.loop import stale_limits
from jobpulse.sweeper.rules import SWEEPER, StaleLimits, plan_sweep

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


STALE = StaleLimits(created_s=60, pending_s=120, running_s=300)


@pytest.mark.parametrize(
    ("status", "limit", "started"),
    [(S.CREATED, 60, None), (S.PENDING, 120, None), (S.RUNNING, 300, T0)],
)
def test_a_job_unchanged_past_its_status_limit_is_flagged(
    status: JobStatus, limit: float, started: datetime | None
) -> None:
    quiet = job(status=status, started_at=started)
    assert plan_sweep(quiet, at(limit - 1), STALE).values == {}
    flagged = plan_sweep(quiet, at(limit), STALE)
    assert flagged.values == {"stuck_since": at(limit), "updated_at": at(limit)}
    assert flagged.event is not None
    assert flagged.event.reason == f"stuck: {status} and unchanged for {limit:g}s"
    again = plan_sweep(replace(quiet, stuck_since=at(limit)), at(10 * limit), STALE)
    assert (again.values, again.event) == ({}, None)  # flagged once; kept unless told to expire


def test_a_change_restarts_the_count() -> None:
    touched = job(status=S.PENDING, started_at=None, updated_at=at(100))
    assert plan_sweep(touched, at(219), STALE).values == {}
    assert "stuck_since" in plan_sweep(touched, at(220), STALE).values


def test_flagged_stale_jobs_expire_a_period_later_when_told_to() -> None:
    expiring = replace(STALE, expire=True)
    flagged = job(status=S.CREATED, started_at=None, stuck_since=at(60), updated_at=at(60))
    assert plan_sweep(flagged, at(119), expiring).values == {}
    expired = plan_sweep(flagged, at(120), expiring)
    assert (expired.values["status"], expired.values["stop_reason"]) == (
        S.EXPIRED,
        StopReason.TIMEOUT,
    )
    assert expired.values["stuck_since"] is None
    assert expired.event is not None
    assert expired.event.reason == "stale: created and unchanged for 120s"


def test_heartbeat_watched_jobs_and_unset_limits_are_not_stale() -> None:
    watched = job(heartbeat_timeout_s=1000, heartbeat_at=T0)
    assert plan_sweep(watched, at(900), STALE).values == {}
    assert plan_sweep(job(status=S.RUNNING), at(10**6), StaleLimits()).values == {}


def test_moving_on_clears_the_stuck_flag() -> None:
    stuck = job(status=S.PENDING, started_at=None, stuck_since=at(5))
    started = plan_change(stuck, JobChange(status=S.RUNNING), at(6), "worker")
    assert started.values["stuck_since"] is None


def test_the_settings_give_the_limits_and_none_turns_one_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert stale_limits(Settings()) == StaleLimits(created_s=3600, pending_s=3600)
    monkeypatch.setenv("JOBPULSE_STALE_CREATED_S", "none")
    monkeypatch.setenv("JOBPULSE_STALE_RUNNING_S", "900")
    monkeypatch.setenv("JOBPULSE_STALE_ACTION", "expire")
    assert stale_limits(Settings()) == StaleLimits(
        created_s=None, pending_s=3600, running_s=900, expire=True
    )
