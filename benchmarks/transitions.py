"""Transitions per second: JobManager.update_job against the raw driver doing the same work.

Each job lives three transitions (created → pending → running → completed), one after the
other. A transition is what JobManager does for it: lock-read the job, compare-and-set
UPDATE with its rollup delta, history INSERT, in one transaction. The raw loop issues those
same statements on one connection with stdlib sqlite3 or asyncpg, committing each
transition on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg

from benchmarks.common import ORG, fresh_database, seed, sqlite_path
from jobpulse import Actor, JobManager, Settings
from jobpulse.domain import elapsed_ns

ACTOR = Actor(ORG, "user-0")
STEPS = ("pending", "running", "completed")
SELECT = "SELECT * FROM jobs WHERE id = {0} AND organization_id = {1} AND user_id = {2}"
UPDATES = {
    "pending": "UPDATE jobs SET status = {0}, updated_at = {1} WHERE id = {2} AND status = {3}",
    "running": "UPDATE jobs SET status = {0}, updated_at = {1}, started_at = {1} "
    "WHERE id = {2} AND status = {3}",
    "completed": "UPDATE jobs SET status = {0}, updated_at = {1}, completed_at = {1}, "
    "total_duration_ns = {4} WHERE id = {2} AND status = {3}",
}
INSERT_EVENT = (
    "INSERT INTO job_events (job_id, from_status, to_status, stop_reason, applied, reason, "
    "actor, at) VALUES ({0}, {1}, {2}, NULL, {3}, NULL, {4}, {5})"
)
#: PostgreSQL: an UPDATE above that also appends the job's rollup delta, as JobManager's
#: statements do (SQLite's trigger does it there, on both sides).
WITH_DELTA = (
    "WITH moved AS ({update} RETURNING organization_id, user_id, job_type, created_at, "
    "status, completed_at, total_duration_ns) INSERT INTO job_rollup_deltas (organization_id, "
    "user_id, job_type, created_at, old_status, new_status, new_completed_at, "
    "new_total_duration_ns) SELECT organization_id, user_id, job_type, created_at, {{3}}, "
    "status, completed_at, total_duration_ns FROM moved"
)

#: PostgreSQL, the second reference: the same rows in fewer statements, the UPDATE appending
#: its delta and its history row ({4} the actor; the duration then {5}).
MERGED = (
    "WITH moved AS ({update} RETURNING organization_id, user_id, job_type, created_at, "
    "status, completed_at, total_duration_ns), delta AS (INSERT INTO job_rollup_deltas "
    "(organization_id, user_id, job_type, created_at, old_status, new_status, "
    "new_completed_at, new_total_duration_ns) SELECT organization_id, user_id, job_type, "
    "created_at, {{3}}, status, completed_at, total_duration_ns FROM moved) "
    "INSERT INTO job_events (job_id, from_status, to_status, stop_reason, applied, reason, "
    "actor, at) SELECT {{2}}, {{3}}, {{0}}, NULL, true, NULL, {{4}}, {{1}} FROM moved"
)


def _sql(template: str, style: str) -> str:
    marks = [f"{style}{n}" for n in range(1, 7)]
    return template.format(*marks)


def _raw_sqlite(url: str, job_ids: list[str], synchronous: str) -> float:
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    connection.row_factory = sqlite3.Row
    pragmas = ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000")
    for pragma in (*pragmas, f"synchronous={synchronous}"):
        connection.execute(f"PRAGMA {pragma}")
    select = _sql(SELECT, "?")
    updates = {step: _sql(sql, "?") for step, sql in UPDATES.items()}
    insert = _sql(INSERT_EVENT, "?")
    began = time.perf_counter()
    for job_id in job_ids:
        for previous, step in itertools.pairwise(("created", *STEPS)):
            now = datetime.now(UTC)
            stamp = now.replace(tzinfo=None).isoformat(" ", "microseconds")
            connection.execute("BEGIN IMMEDIATE")
            row = connection.execute(select, (job_id, ORG, ACTOR.user_id)).fetchone()
            extra = []
            if step == "completed":
                started = datetime.fromisoformat(row["started_at"]).replace(tzinfo=UTC)
                extra = [elapsed_ns(started, now)]
            connection.execute(updates[step], (step, stamp, job_id, previous, *extra))
            connection.execute(insert, (job_id, previous, step, True, ACTOR.user_id, stamp))
            connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return len(job_ids) * len(STEPS) / elapsed


async def _raw_asyncpg(
    url: str, job_ids: list[str], callers: int = 1, merged: bool = False
) -> float:
    """The same statements on asyncpg: `callers` concurrent callers on a pool of as many
    connections, a transaction per transition (1: one connection, one caller); `merged`,
    the UPDATE, its delta and its history row one statement.
    """
    pool = await asyncpg.create_pool(url, min_size=callers, max_size=callers)
    select = _sql(SELECT, "$") + " FOR UPDATE"
    updates = {step: _sql(WITH_DELTA.format(update=sql), "$") for step, sql in UPDATES.items()}
    if merged:
        updates = {
            step: _sql(MERGED.format(update=sql.replace("{4}", "{5}")), "$")
            for step, sql in UPDATES.items()
        }
    insert = _sql(INSERT_EVENT, "$")
    pending: Iterator[str] = iter(job_ids)

    async def caller() -> None:
        async with pool.acquire() as connection:
            for job_id in pending:
                for previous, step in itertools.pairwise(("created", *STEPS)):
                    now = datetime.now(UTC)
                    async with connection.transaction():
                        row = await connection.fetchrow(select, job_id, ORG, ACTOR.user_id)
                        extra = [elapsed_ns(row["started_at"], now)] if step == "completed" else []
                        if merged:
                            values = (step, now, job_id, previous, ACTOR.user_id, *extra)
                            await connection.execute(updates[step], *values)
                            continue
                        await connection.execute(updates[step], step, now, job_id, previous, *extra)
                        await connection.execute(
                            insert, job_id, previous, step, True, ACTOR.user_id, now
                        )

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    await pool.close()
    return len(job_ids) * len(STEPS) / elapsed


async def _manager(url: str, job_ids: list[str], concurrency: int, synchronous: str) -> float:
    settings = Settings(database_url=url, sqlite_synchronous=synchronous)
    manager = JobManager.from_settings(settings)
    pending: Iterator[str] = iter(job_ids)

    async def worker() -> None:
        for job_id in pending:
            for step in STEPS:
                await manager.update_job(ACTOR, job_id, status=step)

    await manager.get_job(ACTOR, job_ids[0])  # connect before the clock starts
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await manager.close()
    return len(job_ids) * len(STEPS) / elapsed


async def measure(
    kind: str, jobs: int, synchronous: str = "FULL", rounds: int = 1
) -> dict[str, list[float]]:
    """Transitions per second, each side in `rounds` alternating rounds: raw driver (one
    connection; on PostgreSQL also a pool of 16 with 16 callers, the fair baseline for 16
    callers, and the same pool with a transition's writes in one statement), and JobManager
    at concurrency 1 and 16.

    `synchronous` is SQLite's fsync policy, the same for both sides (PostgreSQL ignores it).
    """
    results: dict[str, list[float]] = {}
    names: tuple[str, ...] = ("raw", "c1", "c16")
    if kind == "postgresql":
        names = ("raw", "c1", "raw16", "c16", "merged16")
    for _ in range(rounds):
        for name in names:
            async with fresh_database(kind) as url:
                job_ids = await seed(url, jobs, users=1, status="created")
                results.setdefault(name, []).append(
                    await _transitions(kind, name, url, job_ids, synchronous)
                )
    return results


async def _transitions(
    kind: str, name: str, url: str, job_ids: list[str], synchronous: str
) -> float:
    if name == "raw" and kind == "sqlite":
        return await asyncio.to_thread(_raw_sqlite, url, job_ids, synchronous)
    if name == "merged16":
        return await _raw_asyncpg(url, job_ids, 16, merged=True)
    if name.startswith("raw"):
        return await _raw_asyncpg(url, job_ids, int(name[3:] or 1))
    return await _manager(url, job_ids, int(name[1:]), synchronous)


INSERT_JOB = (
    "INSERT INTO jobs (id, organization_id, user_id, job_type, status, background, metadata, "
    "created_at, updated_at) VALUES ({0}, {1}, {2}, 'job', 'created', {3}, '{{}}', {4}, {4})"
)
INSERT_CREATED = (
    "INSERT INTO job_events (job_id, from_status, to_status, applied, reason, actor, at) "
    "VALUES ({0}, NULL, 'created', {1}, 'created', {2}, {3})"
)
#: A new job's rollup delta, as JobManager writes it: SQLite a statement of its own,
#: PostgreSQL in the job's INSERT.
INSERT_DELTA = (
    "INSERT INTO job_rollup_deltas (organization_id, user_id, job_type, created_at, "
    "new_status) VALUES ({0}, {1}, 'job', {2}, 'created')"
)
INSERT_JOB_WITH_DELTA = (
    "WITH made AS ("
    + INSERT_JOB
    + " RETURNING organization_id, user_id, job_type, created_at, status) INSERT INTO "
    "job_rollup_deltas (organization_id, user_id, job_type, created_at, new_status) "
    "SELECT * FROM made"
)

#: PostgreSQL, the second reference: a new job, its delta and its first event in one statement.
CREATED_MERGED = (
    "WITH made AS ("
    + INSERT_JOB
    + " RETURNING id, organization_id, user_id, job_type, created_at, status), delta AS (INSERT"
    " INTO job_rollup_deltas (organization_id, user_id, job_type, created_at, new_status) "
    "SELECT organization_id, user_id, job_type, created_at, status FROM made) INSERT INTO "
    "job_events (job_id, from_status, to_status, applied, "
    "reason, actor, at) SELECT id, NULL, 'created', true, 'created', user_id, created_at "
    "FROM made"
)


def _raw_sqlite_creates(url: str, count: int) -> float:
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000"):
        connection.execute(f"PRAGMA {pragma}")
    job, event = _sql(INSERT_JOB, "?"), _sql(INSERT_CREATED, "?")
    delta = _sql(INSERT_DELTA, "?")
    began = time.perf_counter()
    for number in range(count):
        job_id = f"job-raw-{number}"
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(job, (job_id, ORG, ACTOR.user_id, False, stamp))
        connection.execute(delta, (ORG, ACTOR.user_id, stamp))
        connection.execute(event, (job_id, True, ACTOR.user_id, stamp))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return count / elapsed


async def _raw_asyncpg_creates(url: str, count: int, callers: int, merged: bool = False) -> float:
    """A pool of `callers`, a transaction per create; `merged`, one statement (the job, its
    delta and its event), committing on its own.
    """
    pool = await asyncpg.create_pool(url, min_size=callers, max_size=callers)
    job, event = _sql(INSERT_JOB_WITH_DELTA, "$"), _sql(INSERT_CREATED, "$")
    alone = _sql(CREATED_MERGED, "$")
    numbers = iter(range(count))

    async def caller() -> None:
        async with pool.acquire() as connection:
            for number in numbers:
                job_id, now = f"job-raw-{number}", datetime.now(UTC)
                if merged:
                    await connection.execute(alone, job_id, ORG, ACTOR.user_id, False, now)
                    continue
                async with connection.transaction():
                    await connection.execute(job, job_id, ORG, ACTOR.user_id, False, now)
                    await connection.execute(event, job_id, True, ACTOR.user_id, now)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    await pool.close()
    return count / elapsed


async def _manager_creates(url: str, count: int, concurrency: int) -> float:
    manager = JobManager.from_settings(Settings(database_url=url))
    numbers = iter(range(count))

    async def worker() -> None:
        for _ in numbers:
            await manager.create_job(ACTOR)

    await manager.count_jobs(ACTOR)  # connect before the clock starts
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await manager.close()
    return count / elapsed


async def measure_creates(kind: str, count: int, rounds: int = 1) -> dict[str, list[float]]:
    """Creates per second, each side in `rounds` alternating rounds: the raw baseline
    (SQLite: the single writer; PostgreSQL: a pool of 16 with 16 callers, and the same pool
    with a create one statement), and JobManager.create_job with 16 callers.
    """
    results: dict[str, list[float]] = {}
    names = ("raw", "c16", "merged") if kind == "postgresql" else ("raw", "c16")
    for _ in range(rounds):
        for name in names:
            async with fresh_database(kind) as url:
                if name == "c16":
                    rate = await _manager_creates(url, count, 16)
                elif kind == "sqlite":
                    rate = await asyncio.to_thread(_raw_sqlite_creates, url, count)
                else:
                    rate = await _raw_asyncpg_creates(url, count, 16, merged=name == "merged")
                results.setdefault(name, []).append(rate)
    return results
