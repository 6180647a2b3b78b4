"""Retention on SQLite and PostgreSQL: ended jobs and finished webhooks older than the cut-off
go, with everything that hangs on them, in bounded batches; active jobs, recent ones and
undelivered webhooks stay; a dry run changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, func, select

from jobpulse import Actor, JobManager, Settings, ValidationError
from jobpulse.retention.pruner import prune
from jobpulse.storage import attempts, claims, outbox, retention
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import callback_attempts, job_events, job_steps, jobs
from jobpulse.storage.tables import outbox as outbox_table
from tests.sql import database_of

ALICE = Actor("org-a", "alice")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOOK = "http://127.0.0.1:9/hook"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def manager(database_url: str) -> AsyncIterator[tuple[JobManager, Clock]]:
    clock = Clock()
    store = open_store(Settings(database_url=database_url))
    yield JobManager(store, clock, allow_private_callbacks=True), clock
    await store.close()


def rows(connection: Connection) -> dict[str, int]:
    tables = {
        "jobs": jobs,
        "events": job_events,
        "steps": job_steps,
        "attempts": callback_attempts,
        "messages": outbox_table,
    }
    return {
        kind: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
        for kind, table in tables.items()
    }


async def deliver_all(manager: JobManager, at: datetime) -> None:
    """Record one delivered attempt for every message waiting (as a worker would)."""
    claimed = await database_of(manager).write(claims.claim_due, at, at + timedelta(60), 1000)
    outcomes = [
        (m, outbox.Attempt(1, at, 200, None, 1.0, "delivered", None), None) for m in claimed
    ]
    await database_of(manager).write(attempts.record_attempts, outcomes)


async def test_old_ended_jobs_and_finished_webhooks_go_and_nothing_else(
    manager: tuple[JobManager, Clock],
) -> None:
    jobs_, clock = manager
    for _ in range(12):  # old, ended, with a step, a callback delivered
        job = await jobs_.create_job(ALICE, status="running", callback_url=HOOK)
        await jobs_.record_step(ALICE, job.id, status="success")
        await jobs_.update_job(ALICE, job.id, stop_reason="end_turn")
    await deliver_all(jobs_, T0)
    old_running = await jobs_.create_job(ALICE, status="running")
    undelivered = await jobs_.create_job(ALICE, status="running", callback_url=HOOK)
    await jobs_.update_job(ALICE, undelivered.id, stop_reason="error")  # its callback waits
    clock.now = T0 + timedelta(days=40)
    recent = await jobs_.create_job(ALICE, status="running")
    await jobs_.update_job(ALICE, recent.id, status="completed")

    before = await database_of(jobs_).read(rows)
    would = await prune(jobs_, timedelta(days=30), dry_run=True)
    assert await database_of(jobs_).read(rows) == before  # the dry run changed nothing
    assert would == {"jobs": 13, "attempts": 12, "messages": 12}

    removed = await prune(jobs_, timedelta(days=30), batch=5)
    assert removed == would
    after = await database_of(jobs_).read(rows)
    gone = {kind: before[kind] - after[kind] for kind in before}
    assert gone == removed | {"events": 26, "steps": 12}  # with their jobs, by cascade
    left = {job.id for job in await jobs_.list_jobs(ALICE)}
    assert left == {old_running.id, recent.id}
    assert await database_of(jobs_).read(outbox.pending_count) == 1  # the undelivered callback
    assert await prune(jobs_, timedelta(days=30)) == dict.fromkeys(retention.KINDS, 0)


async def test_a_batch_removes_at_most_its_limit(manager: tuple[JobManager, Clock]) -> None:
    jobs_, clock = manager
    for _ in range(9):
        job = await jobs_.create_job(ALICE, status="running")
        await jobs_.update_job(ALICE, job.id, status="failed")
    clock.now = T0 + timedelta(days=2)
    cutoff = clock.now - timedelta(days=1)
    first = await database_of(jobs_).write(retention.prune_batch, cutoff, 4)
    assert first == retention.Pruned({"jobs": 4, "attempts": 0, "messages": 0}, finished=False)
    assert (await jobs_.count_jobs(ALICE)).total == 5
    assert (await database_of(jobs_).read(rows))["events"] == 5 * 2


async def test_a_negative_age_is_refused(manager: tuple[JobManager, Clock]) -> None:
    jobs_, _clock = manager
    with pytest.raises(ValidationError, match="must not be negative"):
        await prune(jobs_, timedelta(days=-1))


class Traffic:
    """A writer's load as a test sets it: changes coming in (`busy`), and one waiting from
    the `waits_after`-th look on."""

    def __init__(self, busy: bool, waits_after: int | None = None) -> None:
        self.busy = busy
        self.waits_after = waits_after
        self.looks = 0

    def recent(self) -> bool:
        return self.busy

    def waiting(self) -> bool:
        self.looks += 1
        return self.waits_after is not None and self.looks >= self.waits_after


async def ended_jobs(jobs_: JobManager, clock: Clock, number: int) -> datetime:
    """`number` jobs ended two days ago; the cut-off one day ago."""
    for _ in range(number):
        job = await jobs_.create_job(ALICE, status="running")
        await jobs_.update_job(ALICE, job.id, status="completed")
    clock.now = T0 + timedelta(days=2)
    return clock.now - timedelta(days=1)


async def test_a_batch_makes_way_for_changes(manager: tuple[JobManager, Clock]) -> None:
    jobs_, clock = manager
    cutoff = await ended_jobs(jobs_, clock, 20)
    busy = Traffic(busy=True, waits_after=3)  # a change waits after the third step
    first = await database_of(jobs_).write(retention.prune_batch, cutoff, 100, busy)
    steps = 3 * retention.STEP_WHEN_BUSY
    assert first == retention.Pruned({"jobs": steps, "attempts": 0, "messages": 0}, False)
    assert (await jobs_.count_jobs(ALICE)).total == 20 - steps
    # Quiet again: the rest goes in one step, and the batch says nothing is left.
    rest = await database_of(jobs_).write(retention.prune_batch, cutoff, 100, Traffic(busy=False))
    assert rest == retention.Pruned({"jobs": 20 - steps, "attempts": 0, "messages": 0}, True)


async def test_a_prune_finishes_while_a_writer_keeps_changing_jobs(
    manager: tuple[JobManager, Clock],
) -> None:
    jobs_, clock = manager
    cutoff = await ended_jobs(jobs_, clock, 60)
    running = [(await jobs_.create_job(ALICE, status="running")).id for _ in range(3)]
    pruned = asyncio.Event()
    updates = 0

    async def keep_changing() -> None:
        nonlocal updates
        while not pruned.is_set() or updates < 50:
            await jobs_.update_job(ALICE, running[updates % 3], metadata={"n": updates})
            updates += 1

    changing = asyncio.create_task(keep_changing())
    await asyncio.sleep(0)
    removed = await prune(jobs_, clock.now - cutoff, batch=10)
    pruned.set()
    await changing
    assert removed == {"jobs": 60, "attempts": 0, "messages": 0}
    assert {job.id for job in await jobs_.list_jobs(ALICE)} == set(running)
    last = {job.id: job.metadata["n"] for job in await jobs_.list_jobs(ALICE)}
    assert max(last.values()) == updates - 1  # every change went through
