"""The sweeper on SQLite and PostgreSQL: deadlines, stuck jobs, alerts, racing replicas."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import Connection

from jobpulse import Actor, JobFilter, JobManager, JobStatus, Settings
from jobpulse.storage import sweeps
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.engine import run_in_transaction
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import outbox
from jobpulse.sweeper.loop import Sweeper
from jobpulse.sweeper.rules import StaleLimits
from tests.clock import Clock
from tests.sql import database_of, plan_of

ALICE = Actor("org-a", "alice")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def jobs(database_url: str, clock: Clock) -> AsyncIterator[JobManager]:
    store = open_store(Settings(database_url=database_url))
    yield JobManager(store, clock, allow_private_callbacks=True)
    await store.close()


@pytest.fixture
def sweeper(jobs: JobManager) -> Sweeper:
    return Sweeper(jobs, alert_webhook="http://127.0.0.1:9/alerts")


async def queued(jobs: JobManager) -> list[tuple[str, str | None]]:
    rows = await database_of(jobs).read(
        lambda c: c.execute(outbox.select().order_by(outbox.c.id)).all()
    )
    return [(row.event_type, row.job_id) for row in rows]


async def test_past_deadline_expires_and_calls_back(
    jobs: JobManager, sweeper: Sweeper, clock: Clock
) -> None:
    due = await jobs.create_job(
        ALICE, status="pending", timeout_s=10, callback_url="http://127.0.0.1:9/cb"
    )
    later = await jobs.create_job(ALICE, status="running", timeout_s=60)
    clock.advance(10)
    changed = await sweeper.sweep()
    assert [job.id for job, _plan in changed] == [due.id]
    expired = await jobs.get_job(ALICE, due.id)
    assert (expired.status, expired.stop_reason) == (JobStatus.EXPIRED, "timeout")
    assert expired.completed_at == clock.now
    assert (await jobs.get_job(ALICE, later.id)).status == JobStatus.RUNNING
    assert await queued(jobs) == [("job.expired", due.id)]
    assert await sweeper.sweep() == []  # nothing twice
    history = await jobs.list_events(ALICE, due.id)
    assert (history[-1].to_status, history[-1].actor) == (JobStatus.EXPIRED, "jobpulse:sweeper")


async def test_silent_job_is_flagged_cleared_then_lost(
    jobs: JobManager, sweeper: Sweeper, clock: Clock
) -> None:
    job = await jobs.create_job(ALICE, status="running", heartbeat_timeout_s=30)
    clock.advance(29)
    assert await sweeper.sweep() == []
    clock.advance(1)
    await sweeper.sweep()
    flagged = await jobs.get_job(ALICE, job.id)
    assert flagged.stuck_since == clock.now
    assert flagged.status == JobStatus.RUNNING
    assert await queued(jobs) == [("job.stuck", None)]
    clock.advance(10)
    beat = await jobs.heartbeat(ALICE, job.id, progress={"step": 3})
    assert beat.stuck_since is None
    clock.advance(29)
    assert await sweeper.sweep() == []  # the heartbeat reset the clock
    clock.advance(1)
    await sweeper.sweep()
    clock.advance(30)
    await sweeper.sweep()
    lost = await jobs.get_job(ALICE, job.id)
    assert (lost.status, lost.stop_reason) == (JobStatus.EXPIRED, "heartbeat_lost")
    reasons = [event.reason for event in await jobs.list_events(ALICE, job.id)]
    assert reasons[1:] == [
        "stuck: no heartbeat for 30s",
        "heartbeat resumed",
        "stuck: no heartbeat for 30s",
        "no heartbeat after stuck",
    ]


async def test_racing_sweepers_transition_each_job_once(
    database_url: str, jobs: JobManager, clock: Clock
) -> None:
    created = [await jobs.create_job(ALICE, status="running", timeout_s=5) for _ in range(40)]
    clock.advance(6)
    others = [JobManager(open_store(Settings(database_url=database_url)), clock) for _ in range(3)]
    try:
        results = await asyncio.gather(*(Sweeper(j).sweep() for j in [jobs, *others]))
    finally:
        for other in others:
            await other.close()
    swept = [job.id for changed in results for job, _plan in changed]
    assert sorted(swept) == sorted(job.id for job in created)
    for job in created:
        events = await jobs.list_events(ALICE, job.id)
        assert [(e.to_status, e.applied) for e in events] == [
            (JobStatus.RUNNING, True),
            (JobStatus.EXPIRED, True),
        ]


STALE = StaleLimits(created_s=3600, pending_s=3600, running_s=600)


async def test_stale_jobs_of_each_status_are_flagged_once_by_racing_sweepers(
    database_url: str, clock: Clock
) -> None:
    managers = [
        JobManager(open_store(Settings(database_url=database_url)), clock) for _ in range(4)
    ]
    sweepers = [Sweeper(manager, STALE, "http://127.0.0.1:9/alerts") for manager in managers]
    jobs = managers[0]
    try:
        quiet = {
            status: [await jobs.create_job(ALICE, status=status) for _ in range(5)]
            for status in ("created", "pending", "running")
        }
        watched = await jobs.create_job(ALICE, status="running", heartbeat_timeout_s=7200)
        busy = await jobs.create_job(ALICE, status="pending")
        clock.advance(600)
        swept = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))
        flagged = sorted(job.id for changed in swept for job, _plan in changed)
        assert flagged == sorted(job.id for job in quiet["running"])
        clock.advance(2999)
        await jobs.update_job(ALICE, busy.id, metadata={"progress": 1})  # a change: not stale
        clock.advance(1)
        swept = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))
        flagged = sorted(job.id for changed in swept for job, _plan in changed)
        assert flagged == sorted(job.id for job in quiet["created"] + quiet["pending"])
        assert (await jobs.count_jobs(ALICE, JobFilter(stuck=True))).total == 15
        for job in quiet["created"] + quiet["pending"]:
            events = await jobs.list_events(ALICE, job.id)
            assert [e.reason for e in events if e.actor == "jobpulse:sweeper"] == [
                f"stuck: {job.status} and unchanged for 3600s"
            ]
        assert not (await jobs.get_job(ALICE, watched.id)).stuck_since
        alerts = [kind for kind, _job in await queued(jobs) if kind == "job.stuck"]
        assert len(alerts) == 15
        started = await jobs.update_job(ALICE, quiet["pending"][0].id, status="running")
        assert started.stuck_since is None  # moving on clears the flag
    finally:
        for manager in managers:
            await manager.close()


async def test_a_jobs_own_stale_limit_wins_over_its_statuss(
    database_url: str, clock: Clock
) -> None:
    store = open_store(Settings(database_url=database_url))
    jobs = JobManager(store, clock)
    sweeper = Sweeper(jobs, StaleLimits(pending_s=3600, expire=True))
    try:
        hasty = await jobs.create_job(ALICE, status="pending", stale_after_s=10)
        patient = await jobs.create_job(ALICE, status="pending", stale_after_s=7200)
        running = await jobs.create_job(ALICE, status="running", stale_after_s=60)
        beating = await jobs.create_job(
            ALICE, status="running", stale_after_s=30, heartbeat_timeout_s=600
        )
        plain = await jobs.create_job(ALICE, status="pending")
        clock.advance(11)
        assert {job.id for job, _ in await sweeper.sweep()} == {hasty.id}
        # 31 s: the beating job's own limit comes before its heartbeat's; the hasty one,
        # flagged a period ago, expires.
        clock.advance(20)
        assert {job.id for job, _ in await sweeper.sweep()} == {beating.id, hasty.id}
        assert (await jobs.get_job(ALICE, hasty.id)).status == JobStatus.EXPIRED
        clock.advance(30)  # 61 s: the running job without a heartbeat timeout
        assert {job.id for job, _ in await sweeper.sweep()} == {running.id}
        clock.advance(3600)  # the status limit takes the plain job, not the patient one
        flagged = {job.id for job, _ in await sweeper.sweep()}
        assert plain.id in flagged
        assert patient.id not in flagged
        clock.advance(3600)
        assert patient.id in {job.id for job, _ in await sweeper.sweep()}
        events = await jobs.list_events(ALICE, patient.id)
        assert events[-1].reason == "stuck: pending and unchanged for 7200s"
        assert (await jobs.get_job(ALICE, patient.id)).stale_after_s == 7200
    finally:
        await jobs.close()


async def test_without_stale_limits_a_jobs_own_still_holds(database_url: str, clock: Clock) -> None:
    store = open_store(Settings(database_url=database_url))
    jobs = JobManager(store, clock)
    sweeper = Sweeper(jobs)
    try:
        job = await jobs.create_job(ALICE, stale_after_s=5)
        clock.advance(6)
        assert [j.id for j, _ in await sweeper.sweep()] == [job.id]
    finally:
        await jobs.close()


def _plans(connection: Connection, now: datetime) -> dict[str, str]:
    """Each sweeper statement's plan, as the database would run it on the jobs stored."""
    stale = StaleLimits(created_s=60, pending_s=60, running_s=60, expire=True)
    statements = {
        "past their deadline": sweeps._past_deadline(now, 100),
        "silent too long": sweeps._watched(100),
        "unchanged too long": sweeps._stale(dialect_of(connection), now, stale, 100),
    }
    # SQLite's planner as jobpulse leaves it, with no statistics; PostgreSQL's with them.
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE jobs")  # as autovacuum would have by then
    return {name: plan_of(connection, statement) for name, statement in statements.items()}


async def test_a_sweep_reads_only_the_jobs_it_may_take_not_every_job(
    jobs: JobManager, database_url: str, clock: Clock
) -> None:
    # A few jobs of every kind the sweeper looks at, among many ended ones, as in any table.
    for number in range(40):
        status = "running" if number % 4 == 0 else "created"
        await jobs.create_job(ALICE, status=status, heartbeat_timeout_s=30, stale_after_s=60)

    async def ended() -> None:
        job = await jobs.create_job(ALICE, status="running", heartbeat_timeout_s=30)
        await jobs.update_job(ALICE, job.id, status="completed")

    for _ in range(10):
        await asyncio.gather(*(ended() for _ in range(200)))
    plans = await run_in_transaction(database_url, lambda c: _plans(c, clock()))
    for name, plan in plans.items():
        full_scans = [
            line for line in plan.splitlines() if re.search(r"^SCAN jobs$|Seq Scan on jobs", line)
        ]
        assert full_scans == [], f"the jobs {name} are found by reading every job:\n{plan}"
