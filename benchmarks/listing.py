"""Listing latency: a page of 50 jobs filtered by user and status, at 10 thousand and
1 million jobs, against the raw driver running the same two keyset queries.

JobManager.list_jobs reads the page next to the cursor in one statement that looks the
cursor up (in the caller's view) as a subquery; the raw loop sends that same query with
stdlib sqlite3 or asyncpg.
"""

from __future__ import annotations

import asyncio
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


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await call()
    return time.perf_counter() - began


async def _raw_sqlite(url: str) -> tuple[Callable[[str], Awaitable[None]], Callable[[], object]]:
    connection = sqlite3.connect(sqlite_path(url))
    page_sql = PAGE.format(*[f"?{n}" for n in range(1, 5)])

    async def one(job_id: str) -> None:
        rows = connection.execute(page_sql, (ORG, ACTOR.user_id, "running", job_id)).fetchall()
        assert len(rows) == 50

    return one, connection.close


async def _raw_asyncpg(url: str) -> tuple[Callable[[str], Awaitable[None]], Callable[[], object]]:
    connection = await asyncpg.connect(url)
    page_sql = PAGE.format(*[f"${n}" for n in range(1, 5)])

    async def one(job_id: str) -> None:
        rows = await connection.fetch(page_sql, ORG, ACTOR.user_id, "running", job_id)
        assert len(rows) == 50

    return one, connection.close


async def measure(kind: str, size: int, samples: int = 1000) -> dict[str, float]:
    """p99 seconds of one filtered page at `size` jobs: JobManager and raw driver.

    The two alternate, cursor by cursor, so that both meet the same machine.
    """
    async with fresh_database(kind) as url:
        cursors = _cursors(await seed(url, size, users=USERS), samples)
        raw, close_raw = await (_raw_sqlite(url) if kind == "sqlite" else _raw_asyncpg(url))
        manager = JobManager.from_settings(Settings(database_url=url))
        query = JobFilter(statuses=frozenset({JobStatus.RUNNING}))

        async def ours(job_id: str) -> None:
            found = await manager.list_jobs(ACTOR, query, Page(limit=50, before=job_id))
            assert len(found) == 50

        took: dict[str, list[float]] = {"raw": [], "ours": []}
        try:
            for number, job_id in enumerate(cursors[:100] + cursors):
                for name, call in (("raw", raw), ("ours", ours)):
                    elapsed = await _timed(functools.partial(call, job_id))
                    if number >= 100:  # the first hundred warm both up
                        took[name].append(elapsed)
        finally:
            await manager.close()
            result = close_raw()
            if asyncio.iscoroutine(result):
                await result
    return {name: p99(samples) for name, samples in took.items()}
