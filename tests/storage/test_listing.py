"""Listing and counting: every filter, keyset pages next to their cursor, tenancy."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from jobpulse import (
    Actor,
    InvalidCursorError,
    Job,
    JobFilter,
    JobManager,
    JobStatus,
    Page,
)
from jobpulse.storage.tables import jobs
from tests.sql import database_of

S = JobStatus


def ids(found: list[Job]) -> list[str]:
    return [job.id for job in found]


async def create_in_order(manager: JobManager, actor: Actor, count: int) -> list[Job]:
    """Jobs created one after another, so that their created_at increase."""
    return [await manager.create_job(actor, metadata={"n": n}) for n in range(count)]


async def test_pages_are_adjacent_to_the_cursor(manager: JobManager, alice: Actor) -> None:
    w = ids(await create_in_order(manager, alice, 10))

    async def page(**kwargs: object) -> list[str]:
        return ids(await manager.list_jobs(alice, page=Page(limit=2, **kwargs)))  # type: ignore[arg-type]

    assert await page(before=w[5], ascending=True) == [w[3], w[4]]
    assert await page(before=w[5]) == [w[4], w[3]]
    assert await page(after=w[5], ascending=True) == [w[6], w[7]]
    assert await page(after=w[5]) == [w[7], w[6]]
    assert await page() == [w[9], w[8]]
    assert await page(ascending=True) == [w[0], w[1]]
    assert await page(after=w[2], before=w[8], ascending=True) == [w[3], w[4]]
    assert await page(after=w[2], before=w[8]) == [w[7], w[6]]
    assert await page(before=w[0]) == []
    assert await page(after=w[9], ascending=True) == []


async def test_walking_a_thousand_jobs_sees_each_once(manager: JobManager, alice: Actor) -> None:
    created: list[Job] = []
    for _ in range(10):  # concurrent batches, so that some created_at tie
        created += await asyncio.gather(*(manager.create_job(alice) for _ in range(100)))
    oldest_first = ids(sorted(created, key=lambda job: (job.created_at, job.id)))
    size = 37

    async def walk(ascending: bool, cursor: str, start: str | None) -> list[str]:
        seen: list[str] = []
        while True:
            kwargs = {cursor: start} if start else {}
            found = ids(await manager.list_jobs(alice, page=Page(size, ascending, **kwargs)))
            if not found:
                return seen
            moving_on = (cursor == "after") == ascending
            seen = seen + found if moving_on else found + seen
            start = found[-1] if moving_on else found[0]

    assert await walk(True, "after", None) == oldest_first
    assert await walk(False, "before", None) == oldest_first[::-1]
    newest, oldest = oldest_first[-1], oldest_first[0]
    assert await walk(True, "before", newest) == oldest_first[:-1]
    assert await walk(False, "after", oldest) == oldest_first[:0:-1]


async def test_every_filter(manager: JobManager, alice: Actor) -> None:
    plain = await manager.create_job(alice)
    typed = await manager.create_job(alice, job_type="agent", background=True, status="running")
    sourced = await manager.create_job(
        alice, status="pending", metadata={"source_id": "src-1", "team": "red", "n": 7}
    )
    failed = await manager.create_job(alice, status="running")
    await manager.update_job(alice, failed.id, stop_reason="llm_api_error")
    # The sweeper (another issue) is what flags stuck jobs; here the test does it directly.
    flag_stuck = update(jobs).where(jobs.c.id == typed.id).values(stuck_since=typed.created_at)
    await database_of(manager).write(lambda connection: connection.execute(flag_stuck))
    everyone = {plain.id, typed.id, sourced.id, failed.id}
    cases: list[tuple[JobFilter, set[str]]] = [
        (JobFilter(), everyone),
        (JobFilter(statuses=frozenset({S.CREATED, S.PENDING})), {plain.id, sourced.id}),
        (JobFilter(job_type="agent"), {typed.id}),
        (JobFilter(background=True), {typed.id}),
        (JobFilter(background=False), everyone - {typed.id}),
        (JobFilter(source_id="src-1"), {sourced.id}),
        (JobFilter(stop_reason="llm_api_error"), {failed.id}),  # type: ignore[arg-type]
        (JobFilter(active=True), everyone - {failed.id}),
        (JobFilter(active=False), {failed.id}),
        (JobFilter(stuck=True), {typed.id}),
        (JobFilter(stuck=False), everyone - {typed.id}),
        (JobFilter(metadata={"team": "red"}), {sourced.id}),
        (JobFilter(metadata={"team": "blue"}), set()),
        (JobFilter(metadata={"n": "7"}), set()),  # metadata filters match strings only
        (JobFilter(user_id="bob"), set()),
        (JobFilter(created_after=sourced.created_at), {failed.id}),
        (JobFilter(created_before=typed.created_at), {plain.id}),
        (
            JobFilter(
                created_after=plain.created_at - timedelta(seconds=1),
                created_before=failed.created_at + timedelta(seconds=1),
            ),
            everyone,
        ),
    ]
    for query, expected in cases:
        assert set(ids(await manager.list_jobs(alice, query))) == expected, query
        count = await manager.count_jobs(alice, query)
        assert count.total == len(expected), query
        assert sum(count.by_status.values()) == count.total
    by_status = (await manager.count_jobs(alice)).by_status
    assert by_status == {
        S.CREATED: 1,
        S.PENDING: 1,
        S.RUNNING: 1,
        S.COMPLETED: 0,
        S.FAILED: 1,
        S.CANCELLED: 0,
        S.EXPIRED: 0,
    }


async def test_admin_sees_the_organization_and_filters_by_user(manager: JobManager) -> None:
    alice, bob = Actor("org-a", "alice"), Actor("org-a", "bob")
    admin = Actor("org-a", "root", is_admin=True)
    stranger = Actor("org-b", "carol")
    mine = await manager.create_job(alice)
    theirs = await manager.create_job(bob)
    await manager.create_job(stranger)
    assert set(ids(await manager.list_jobs(admin))) == {mine.id, theirs.id}
    assert ids(await manager.list_jobs(admin, JobFilter(user_id="bob"))) == [theirs.id]
    assert ids(await manager.list_jobs(alice)) == [mine.id]
    assert ids(await manager.list_jobs(alice, JobFilter(user_id="bob"))) == []


async def test_a_cursor_must_be_visible(manager: JobManager, alice: Actor) -> None:
    mine = await manager.create_job(alice)
    other_tenant = await manager.create_job(Actor("org-b", "alice"))
    colleague = await manager.create_job(Actor("org-a", "bob"))
    for cursor in ("job-unknown", other_tenant.id, colleague.id):
        for field in ("before", "after"):
            with pytest.raises(InvalidCursorError, match="not a job you can see"):
                await manager.list_jobs(alice, page=Page(**{field: cursor}))  # type: ignore[arg-type]
    assert ids(await manager.list_jobs(alice, page=Page(before=mine.id))) == []
