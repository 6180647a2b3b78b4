"""Conformance: the live feed (events after a position, heartbeats) and announcements."""

from __future__ import annotations

import asyncio
from functools import partial

from jobpulse.domain import JobStatus, plan_heartbeat
from jobpulse.listing import JobFilter
from jobpulse.storage.events import Happened
from jobpulse.storage.store import FEED_CHANNEL, JobStore
from tests.storage.conftest import (
    ADMIN,
    ALICE,
    BOB,
    T0,
    change,
    created,
    eventually,
    listening,
    seconds,
    until,
)


async def test_feed_start_is_where_the_history_ends_now(store: JobStore) -> None:
    earlier = await created(store)
    start = await store.feed_start()
    job = await created(store)

    def seen(found: list[Happened]) -> bool:
        return job.id in {happened.event.job_id for happened in found}

    # Everything committed after it follows it (and, on PostgreSQL, what had only just
    # committed when it was taken may too: a position is final only below every open
    # transaction of the server).
    found = await eventually(lambda: store.events_after(start.position, 100), seen)
    assert (found[-1].event.job_id, found[-1].job) == (job.id, job)
    assert all(happened.position > start.position for happened in found)
    assert await store.events_after(found[-1].position, 100) == []
    # What was committed before it is known as such, however late a reader meets it.
    news = [h.event.job_id for h in found if not start.is_before(h.position)]
    assert news == [job.id]
    assert earlier.id not in news


async def test_events_after_resumes_with_nothing_lost_or_repeated(store: JobStore) -> None:
    start = (await store.feed_start()).position
    mine = await created(store)
    theirs = await created(store, BOB, job_type="other")
    await store.apply(ALICE, mine.id, change(JobStatus.RUNNING, at=T0 + seconds(1)))
    await store.apply(ALICE, mine.id, change(JobStatus.RUNNING, at=T0 + seconds(2)))  # rejected

    def three(found: list[Happened]) -> bool:
        return len(found) >= 3

    every = await eventually(lambda: store.events_after(start, 100), three)
    assert [(h.event.job_id, h.event.to_status) for h in every] == [
        (mine.id, JobStatus.CREATED),
        (theirs.id, JobStatus.CREATED),
        (mine.id, JobStatus.RUNNING),  # applied events only
    ]
    assert every[-1].job.status == JobStatus.RUNNING  # its job as it is now
    [first] = await store.events_after(start, 1)
    rest = await store.events_after(first.position, 100)
    assert [first, *rest] == every
    assert await store.events_after(every[-1].position, 100) == []
    alices = await store.events_after(start, 100, ALICE)
    assert [h.event.job_id for h in alices] == [mine.id, mine.id]
    typed = await store.events_after(start, 100, ADMIN, JobFilter(job_type="other"))
    assert [h.event.job_id for h in typed] == [theirs.id]


async def test_beats_after_finds_jobs_that_sent_a_heartbeat(store: JobStore) -> None:
    quiet = await created(store, status=JobStatus.RUNNING)
    first = await created(store, status=JobStatus.RUNNING)
    second = await created(store, status=JobStatus.RUNNING)
    for job, at in ((second, T0 + seconds(7)), (first, T0 + seconds(5))):
        beat = partial(plan_heartbeat, progress=None, now=at, actor="alice")
        await store.apply(ALICE, job.id, beat)
    assert [job.id for job in await store.beats_after(T0, 10)] == [first.id, second.id]
    assert [job.id for job in await store.beats_after(T0 + seconds(5), 10)] == [second.id]
    assert [job.id for job in await store.beats_after(T0, 1)] == [first.id]
    assert quiet.id not in {job.id for job in await store.beats_after(T0 - seconds(1), 10)}


async def test_pushes_events_where_the_database_announces(
    store: JobStore, database_url: str
) -> None:
    assert store.pushes_events == database_url.startswith("postgresql")


async def test_announce_events_reaches_every_listener(store: JobStore, other: JobStore) -> None:
    async with listening(other, FEED_CHANNEL) as heard:
        await store.announce_events()
        if store.pushes_events:
            await until(lambda: len(heard) == 2)
            assert heard == [None, ""]
        else:  # harmless where nothing announces (feeds poll instead)
            await asyncio.sleep(0.2)
            assert heard == []
