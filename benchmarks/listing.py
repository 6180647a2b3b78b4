"""Listing latency: a page of 50 jobs filtered by user and status, at 10 thousand and
1 million jobs, against the raw driver running the same two keyset queries.

JobManager.list_jobs reads the page next to the cursor in one statement that looks the
cursor up (in the caller's view) as a subquery; the raw loop sends that same query with
stdlib sqlite3 or asyncpg.
"""

from __future__ import annotations

import functools
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable

import asyncpg

from benchmarks.common import ORG, fresh_database, p99, seed, seeded_status, sqlite_path
from jobpulse import Actor, JobFilter, JobManager, JobStatus, Page, Settings

USERS = 20
ACTOR = Actor(ORG, "user-3")
PAGE = (
    "SELECT * FROM jobs WHERE organization_id = {0} AND user_id = {1} AND status = {2} "
    "AND (created_at, id) < ((SELECT c.created_at FROM jobs AS c WHERE c.id = {3} "
    "AND c.organization_id = {0} AND c.user_id = {1}), {3}) "
    "ORDER BY created_at DESC, id DESC LIMIT 50"
)


def _cursors(job_ids: list[str], samples: int) -> list[str]:
    user = int(ACTOR.user_id.removeprefix("user-"))
    matching = [
        job_id
        for i, job_id in enumerate(job_ids)
        if i % USERS == user and seeded_status(i, USERS) == "running"
    ]
    return random.Random(7).choices(matching[50:], k=samples)


async def _timed(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    took = []
    for call in calls:
        began = time.perf_counter()
        await call()
        took.append(time.perf_counter() - began)
    return took


def _raw_sqlite(url: str, cursors: list[str]) -> list[float]:
    connection = sqlite3.connect(sqlite_path(url))
    page_sql = PAGE.format(*[f"?{n}" for n in range(1, 5)])
    took = []
    for job_id in cursors:
        began = time.perf_counter()
        rows = connection.execute(page_sql, (ORG, ACTOR.user_id, "running", job_id)).fetchall()
        took.append(time.perf_counter() - began)
        assert len(rows) == 50
    connection.close()
    return took


async def _raw_asyncpg(url: str, cursors: list[str]) -> list[float]:
    connection = await asyncpg.connect(url)
    page_sql = PAGE.format(*[f"${n}" for n in range(1, 5)])

    async def one(job_id: str) -> None:
        rows = await connection.fetch(page_sql, ORG, ACTOR.user_id, "running", job_id)
        assert len(rows) == 50

    try:
        return await _timed([functools.partial(one, c) for c in cursors])
    finally:
        await connection.close()


async def _manager(url: str, cursors: list[str]) -> list[float]:
    manager = JobManager.from_settings(Settings(database_url=url))
    query = JobFilter(statuses=frozenset({JobStatus.RUNNING}))

    async def one(job_id: str) -> None:
        found = await manager.list_jobs(ACTOR, query, Page(limit=50, before=job_id))
        assert len(found) == 50

    try:
        return await _timed([functools.partial(one, c) for c in cursors])
    finally:
        await manager.close()


async def measure(kind: str, size: int, samples: int = 1000) -> dict[str, float]:
    """p99 seconds of one filtered page at `size` jobs: JobManager and raw driver."""
    async with fresh_database(kind) as url:
        cursors = _cursors(await seed(url, size, users=USERS), samples)
        warm = cursors[:100]
        if kind == "sqlite":
            _raw_sqlite(url, warm)
            raw = _raw_sqlite(url, cursors)
        else:
            await _raw_asyncpg(url, warm)
            raw = await _raw_asyncpg(url, cursors)
        await _manager(url, warm)
        ours = await _manager(url, cursors)
    return {"raw": p99(raw), "ours": p99(ours)}
