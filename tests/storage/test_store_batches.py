"""Conformance: the LLM batches a store follows, claimed under a lease."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest
from sqlalchemy import Connection

from jobpulse.batches.rules import BatchRef, Provider
from jobpulse.domain import Job, JobStatus, StopReason
from jobpulse.errors import NotFoundError
from jobpulse.storage import batches
from jobpulse.storage.batches import Polled
from jobpulse.storage.engine import run_in_transaction
from jobpulse.storage.store import JobStore
from tests.sql import plan_of
from tests.storage.conftest import ADMIN, ALICE, EVE, T0, change, new_job, seconds

LEASE_S = 60.0


async def followed(store: JobStore, batch_id: str = "msgbatch_1") -> Job:
    """A running job following an Anthropic batch, due for its first poll at T0."""
    metadata = {"provider": "anthropic", "batch_id": batch_id}
    job = new_job(job_type="llm_batch", status=JobStatus.RUNNING, metadata=metadata)
    stored, _made = await store.create_batch_job(job, None, BatchRef(Provider.ANTHROPIC, batch_id))
    return stored


def polled(at: datetime, next_at: datetime, ended: bool = False) -> Polled:
    return Polled(
        next_poll_at=next_at, polled_at=at, not_found_since=None, cancel_sent_at=None, ended=ended
    )


async def test_claim_batches_holds_each_batch_for_its_lease(store: JobStore) -> None:
    first = await followed(store, "msgbatch_1")
    second = await followed(store, "msgbatch_2")
    assert await store.claim_batches(T0 - seconds(1), T0, 10, LEASE_S) == []  # not due yet
    [held] = await store.claim_batches(T0, T0, 1, LEASE_S)
    [other] = await store.claim_batches(T0, T0, 10, LEASE_S)
    assert {held.job_id, other.job_id} == {first.id, second.id}
    assert held.organization_id == "org-a"
    assert held.polled_at is None
    assert await store.claim_batches(T0 + seconds(59), T0 + seconds(59), 10, LEASE_S) == []
    again = await store.claim_batches(T0 + seconds(60), T0 + seconds(60), 10, LEASE_S)
    assert {claimed.job_id for claimed in again} == {first.id, second.id}  # a poller died


async def test_record_batch_poll_applies_the_change_and_schedules_the_next(
    store: JobStore,
) -> None:
    job = await followed(store)
    [claimed] = await store.claim_batches(T0, T0, 10, LEASE_S)
    poller = ADMIN
    next_at = T0 + seconds(120)
    progress = change(metadata={"progress": {"done": 1, "total": 4}}, at=T0, by="batch-poller")
    changed, plan = await store.record_batch_poll(poller, job.id, progress, polled(T0, next_at))
    assert changed.metadata["progress"] == {"done": 1, "total": 4}
    assert plan.error is None
    assert await store.get(ALICE, job.id) == changed
    assert await store.claim_batches(next_at - seconds(1), next_at, 10, LEASE_S) == []
    [again] = await store.claim_batches(next_at, next_at, 10, LEASE_S)
    assert (again.job_id, again.polled_at) == (claimed.job_id, T0)
    done = change(stop_reason=StopReason.END_TURN, at=next_at, by="batch-poller")
    ended, _plan = await store.record_batch_poll(
        poller, job.id, done, polled(next_at, next_at, True)
    )
    assert ended.status == JobStatus.COMPLETED
    assert await store.claim_batches(next_at + seconds(3600), next_at, 10, LEASE_S) == []
    assert (await store.gauges()).batches == 0  # no longer followed
    with pytest.raises(NotFoundError):
        await store.record_batch_poll(EVE, job.id, done, polled(next_at, next_at))


async def test_poll_batch_soon_makes_a_held_batch_due_now(store: JobStore) -> None:
    job = await followed(store)
    await store.claim_batches(T0, T0, 10, LEASE_S)
    now = T0 + seconds(5)
    await store.apply(ALICE, job.id, change(JobStatus.CANCELLED, at=now))
    assert await store.claim_batches(now, now, 10, LEASE_S) == []
    await store.poll_batch_soon(job.id, now)
    [due] = await store.claim_batches(now, now, 10, LEASE_S)
    assert (due.job_id, due.job_status) == (job.id, JobStatus.CANCELLED)


def _claim_plan(connection: Connection) -> str:
    """The plan of a claim's read, on a database whose planner has statistics of a large
    jobs table and none of the work list, which was empty when they were gathered (SQLite
    keeps them once anyone runs ANALYZE or `PRAGMA optimize`; PostgreSQL's autovacuum does).
    """
    postgres = connection.dialect.name == "postgresql"
    connection.exec_driver_sql("ANALYZE jobs" if postgres else "ANALYZE")
    return plan_of(connection, batches.due(T0, 10))


async def test_a_claim_reads_the_due_batches_not_every_job(
    store: JobStore, database_url: str
) -> None:
    await asyncio.gather(*(store.create(new_job(), None) for _ in range(2000)))
    plan = await run_in_transaction(database_url, _claim_plan)
    scans = [line for line in plan.splitlines() if re.search(r"SCAN jobs\b|Seq Scan on jobs", line)]
    assert scans == [], f"a claim reads every job:\n{plan}"
    await followed(store)
    [claimed] = await store.claim_batches(T0, T0, 10, LEASE_S)
    assert claimed.job_status == JobStatus.RUNNING
