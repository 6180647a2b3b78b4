"""Conformance: the jobs themselves (create, apply, read, list, count, delete, history)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from jobpulse.batches import BatchRef, Provider
from jobpulse.domain import Job, JobStatus, Plan, StopReason
from jobpulse.errors import (
    InvalidCursorError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from jobpulse.listing import JobFilter, Page
from jobpulse.storage.store import JobStore
from tests.storage.conftest import ADMIN, ALICE, BOB, EVE, T0, change, created, new_job, seconds


async def test_create_stores_the_job_and_its_first_event(store: JobStore) -> None:
    job = new_job(metadata={"source_id": "s1"}, callback_url="https://example.com/hook")
    stored, made = await store.create(job, None)
    assert (stored, made) == (job, True)
    assert await store.get(ALICE, job.id) == job
    [first] = await store.history(ALICE, job.id)
    assert (first.from_status, first.to_status, first.applied) == (None, JobStatus.CREATED, True)
    assert (first.at, first.actor, first.reason) == (T0, "alice", "created")


async def test_create_with_a_used_key_gives_the_first_job(store: JobStore) -> None:
    first, made = await store.create(new_job(), "key-1")
    again, made_again = await store.create(new_job(metadata={"other": 1}), "key-1")
    assert made
    assert not made_again
    assert again == first
    # The key is the owner's: another user's is a new job.
    bobs, bob_made = await store.create(new_job(BOB), "key-1")
    assert bob_made
    assert bobs.id != first.id
    # Many at once with one new key: one job made, every caller given it.
    racing = await asyncio.gather(*(store.create(new_job(), "key-2") for _ in range(8)))
    assert sum(made for _job, made in racing) == 1
    assert len({job.id for job, _made in racing}) == 1
    assert (await store.count_jobs(ALICE, JobFilter()))[JobStatus.CREATED] == 2


async def test_create_batch_job_follows_its_batch(store: JobStore) -> None:
    ref = BatchRef(Provider.ANTHROPIC, "msgbatch_01")
    metadata = {"provider": "anthropic", "batch_id": "msgbatch_01"}
    job = new_job(job_type="llm_batch", status=JobStatus.RUNNING, metadata=metadata)
    stored, made = await store.create_batch_job(job, "key-1", ref)
    assert (stored, made) == (job, True)
    retried, made_again = await store.create_batch_job(replace(job, id="job-x"), "key-1", ref)
    assert (retried, made_again) == (job, False)
    [claimed] = await store.claim_batches(T0, T0, 10, 60)
    assert (claimed.job_id, claimed.ref, claimed.job_status) == (job.id, ref, JobStatus.RUNNING)
    assert (await store.gauges()).batches == 1
    assert [event.to_status for event in await store.history(ALICE, job.id)] == ["running"]


async def test_apply_writes_the_plan_and_gives_the_job_as_it_now_is(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING, metadata={"a": 1, "b": 2})
    ended, plan = await store.apply(
        ALICE,
        job.id,
        change(stop_reason=StopReason.END_TURN, at=T0 + seconds(3), metadata={"b": None}),
    )
    assert plan.error is None
    assert plan.ends_job
    assert (ended.status, ended.stop_reason) == (JobStatus.COMPLETED, StopReason.END_TURN)
    assert (ended.completed_at, ended.total_duration_ns) == (T0 + seconds(3), 3_000_000_000)
    assert ended.metadata == {"a": 1}
    assert await store.get(ALICE, job.id) == ended
    last = (await store.history(ALICE, job.id))[-1]
    assert (last.from_status, last.to_status, last.stop_reason) == (
        JobStatus.RUNNING,
        JobStatus.COMPLETED,
        StopReason.END_TURN,
    )


async def test_apply_records_a_rejected_transition_without_applying_it(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    done, _plan = await store.apply(ALICE, job.id, change(JobStatus.FAILED))
    after, plan = await store.apply(ALICE, job.id, change(JobStatus.RUNNING, at=T0 + seconds(1)))
    assert isinstance(plan.error, InvalidTransitionError)
    assert after == done == await store.get(ALICE, job.id)
    rejected = (await store.history(ALICE, job.id))[-1]
    assert (rejected.to_status, rejected.applied) == (JobStatus.RUNNING, False)


async def test_apply_to_a_job_the_actor_cannot_see_is_not_found(store: JobStore) -> None:
    job = await created(store)
    asked: list[Job] = []

    def planner(seen: Job) -> Plan:
        asked.append(seen)
        return change(JobStatus.PENDING)(seen)

    for stranger in (BOB, EVE, replace(ADMIN, organization_id="org-b")):
        with pytest.raises(NotFoundError):
            await store.apply(stranger, job.id, planner)
    assert asked == []
    assert await store.get(ALICE, job.id) == job
    moved, _plan = await store.apply(ADMIN, job.id, planner)  # an admin of its organization
    assert moved.status == JobStatus.PENDING
    assert asked == [job]


async def test_apply_writes_nothing_when_a_rule_refuses(store: JobStore) -> None:
    refused, *others = [await created(store) for _ in range(3)]

    def refuse(job: Job) -> Plan:
        raise ValidationError("no")

    results = await asyncio.gather(
        store.apply(ALICE, refused.id, refuse),
        *(store.apply(ALICE, job.id, change(JobStatus.PENDING)) for job in others),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValidationError)
    assert await store.get(ALICE, refused.id) == refused
    assert len(await store.history(ALICE, refused.id)) == 1
    for job in others:  # changes beside it are not held back by it
        assert (await store.get(ALICE, job.id)).status == JobStatus.PENDING


async def test_get_shows_a_job_only_to_who_may_see_it(store: JobStore) -> None:
    job = await created(store)
    assert await store.get(ALICE, job.id) == job
    assert await store.get(ADMIN, job.id) == job
    for stranger in (BOB, EVE):
        with pytest.raises(NotFoundError):
            await store.get(stranger, job.id)
    with pytest.raises(NotFoundError):
        await store.get(ALICE, "job-missing")


async def test_delete_removes_the_job_and_its_history(store: JobStore) -> None:
    job = await created(store)
    with pytest.raises(NotFoundError):
        await store.delete(BOB, job.id)
    assert await store.get(ALICE, job.id) == job
    await store.delete(ALICE, job.id)
    for read in (store.get, store.history, store.list_steps):
        with pytest.raises(NotFoundError):
            await read(ALICE, job.id)
    with pytest.raises(NotFoundError):
        await store.delete(ALICE, job.id)


async def test_list_jobs_pages_by_keyset(store: JobStore) -> None:
    jobs = [await created(store, at=T0 + seconds(i)) for i in range(5)]
    await created(store, BOB, at=T0 + seconds(9))
    ids = [job.id for job in jobs]

    async def page(
        before: str | None = None, after: str | None = None, ascending: bool = False
    ) -> list[str]:
        found = await store.list_jobs(ALICE, JobFilter(), Page(2, ascending, before, after))
        return [job.id for job in found]

    assert await page() == [ids[4], ids[3]]  # newest first
    assert await page(before=ids[3]) == [ids[2], ids[1]]
    assert await page(before=ids[1]) == [ids[0]]
    assert await page(after=ids[1]) == [ids[3], ids[2]]  # the page next to the cursor
    assert await page(ascending=True) == [ids[0], ids[1]]
    assert await page(ascending=True, after=ids[1]) == [ids[2], ids[3]]
    assert await page(ascending=True, before=ids[3]) == [ids[1], ids[2]]
    everyone = await store.list_jobs(ADMIN, JobFilter(), Page())
    assert len(everyone) == 6
    running = JobFilter(statuses=frozenset({JobStatus.RUNNING}))
    assert await store.list_jobs(ALICE, running, Page()) == []
    bobs_newest = everyone[0].id
    with pytest.raises(InvalidCursorError):
        await page(before=bobs_newest)


async def test_count_jobs_by_status(store: JobStore) -> None:
    for status in (JobStatus.CREATED, JobStatus.CREATED, JobStatus.RUNNING):
        await created(store, status=status)
    await created(store, BOB, status=JobStatus.PENDING)
    await created(store, EVE)
    mine = await store.count_jobs(ALICE, JobFilter())
    assert mine == dict.fromkeys(JobStatus, 0) | {"created": 2, "running": 1}
    theirs = await store.count_jobs(ADMIN, JobFilter(active=True))
    assert theirs == dict.fromkeys(JobStatus, 0) | {"created": 2, "running": 1, "pending": 1}
    typed = await store.count_jobs(ADMIN, JobFilter(job_type="other"))
    assert sum(typed.values()) == 0


async def test_history_oldest_first_with_rejected_attempts(store: JobStore) -> None:
    job = await created(store)
    steps = [
        change(JobStatus.PENDING, at=T0 + seconds(1)),
        change(JobStatus.CREATED, at=T0 + seconds(2)),
        change(JobStatus.RUNNING, at=T0 + seconds(3)),
        change(stop_reason=StopReason.ERROR, at=T0 + seconds(4), reason="boom"),
    ]
    for planner in steps:
        await store.apply(ALICE, job.id, planner)
    history = await store.history(ALICE, job.id)
    assert [(e.to_status, e.applied) for e in history] == [
        (JobStatus.CREATED, True),
        (JobStatus.PENDING, True),
        (JobStatus.CREATED, False),
        (JobStatus.RUNNING, True),
        (JobStatus.FAILED, True),
    ]
    assert [e.at for e in history] == [T0 + seconds(i) for i in range(5)]
    assert history[-1].reason == "boom"
    assert history[-1].stop_reason == StopReason.ERROR
    assert await store.history(ADMIN, job.id) == history
    with pytest.raises(NotFoundError):
        await store.history(EVE, job.id)
