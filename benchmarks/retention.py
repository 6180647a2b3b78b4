"""Retention: jobs pruned per second by `pruner.prune` next to a raw-driver loop doing the
same work (the same batch size, the same statements: delete the delivery attempts of the
oldest ended jobs, their LLM calls (returning what the usage rollups counted of them), then
those jobs and so, by cascade, their history, the jobs picked by a subquery so no id travels
to the client; a transaction a batch), on equally seeded databases.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta

import asyncpg

from benchmarks.common import fresh_database, p99, seed, sqlite_path
from jobpulse import Actor, JobManager, Settings
from jobpulse.retention.pruner import prune

JOBS = 20_000
BATCH = 100
ACTOR = Actor("org-bench", "writer")

#: Each job's callback, delivered at the first attempt.
_ATTEMPTS = (
    "INSERT INTO callback_attempts (outbox_id, webhook_id, job_id, event_type, attempt,"
    " attempted_at, status_code, duration_ms, state)"
    " SELECT 0, 'msg_bench', id, 'job.completed', 1, created_at, 200, 1.0, 'delivered' FROM jobs"
)
_SQLITE_ENDED = [
    "UPDATE jobs SET completed_at = created_at",
    "INSERT INTO job_events (job_id, from_status, to_status, applied, at)"
    " SELECT id, 'running', 'completed', 1, created_at FROM jobs",
    _ATTEMPTS,
]
_POSTGRES_ENDED = [
    "UPDATE jobs SET completed_at = created_at",
    "INSERT INTO job_events (job_id, from_status, to_status, applied, at)"
    " SELECT id, 'running', 'completed', true, created_at FROM jobs",
    _ATTEMPTS,
    "VACUUM ANALYZE",
]
#: The calls of the picked jobs, with what the usage rollups counted of them.
_CALLS = (
    "DELETE FROM llm_usage WHERE job_id IN ({pick}) RETURNING organization_id, job_type, id,"
    " provider, model, recorded_at, input_tokens, output_tokens, cache_read_tokens,"
    " cache_write_tokens, cost_pusd, ttft_ns, duration_ns"
)
_PICK = (
    "SELECT id FROM jobs WHERE completed_at < {cutoff} AND status IN"
    " ('cancelled', 'completed', 'expired', 'failed') ORDER BY completed_at LIMIT {limit}"
)


async def _seeded(kind: str, url: str) -> None:
    await seed(url, JOBS, users=10, status="completed")
    if kind == "sqlite":
        connection = sqlite3.connect(sqlite_path(url))
        with connection:
            for statement in _SQLITE_ENDED:
                connection.execute(statement)
        connection.close()
        return
    raw = await asyncpg.connect(url)
    try:
        for statement in _POSTGRES_ENDED:
            await raw.execute(statement)
    finally:
        await raw.close()


def _raw_sqlite(url: str) -> float:
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    pick = _PICK.format(cutoff="'2100-01-01'", limit=BATCH)
    began = time.perf_counter()
    while True:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(f"DELETE FROM callback_attempts WHERE job_id IN ({pick})")
        connection.execute(_CALLS.format(pick=pick)).fetchall()
        removed = connection.execute(f"DELETE FROM jobs WHERE id IN ({pick})").rowcount
        connection.execute("COMMIT")
        if removed < BATCH:
            break
    seconds = time.perf_counter() - began
    connection.close()
    return JOBS / seconds


async def _raw_postgres(url: str) -> float:
    connection = await asyncpg.connect(url)
    pick = _PICK.format(cutoff="'2100-01-01'::timestamptz", limit=BATCH) + " FOR UPDATE SKIP LOCKED"
    began = time.perf_counter()
    try:
        while True:
            async with connection.transaction():
                await connection.execute(f"DELETE FROM callback_attempts WHERE job_id IN ({pick})")
                await connection.fetch(_CALLS.format(pick=pick))
                status = await connection.execute(f"DELETE FROM jobs WHERE id IN ({pick})")
            if int(status.split()[-1]) < BATCH:
                break
    finally:
        await connection.close()
    return JOBS / (time.perf_counter() - began)


async def _ours(url: str) -> float:
    jobs = JobManager.from_settings(Settings(database_url=url))
    try:
        began = time.perf_counter()
        removed = await prune(jobs, timedelta(days=1), batch=BATCH)
        seconds = time.perf_counter() - began
    finally:
        await jobs.close()
    assert removed == {"jobs": JOBS, "attempts": JOBS, "messages": 0}, removed
    return JOBS / seconds


#: Seconds of the writer's updates alone before the prune, and as many after it.
ALONE_S = 5.0


async def _updates(jobs: JobManager, job_ids: list[str], stop: asyncio.Event) -> list[float]:
    """Seconds each metadata update took, one at a time, until `stop` (at least 200)."""
    latencies: list[float] = []
    number = 0
    while not stop.is_set() or len(latencies) < 200:
        job_id = job_ids[number % len(job_ids)]
        began = time.perf_counter()
        await jobs.update_job(ACTOR, job_id, metadata={"n": number})
        latencies.append(time.perf_counter() - began)
        number += 1
    return latencies


async def _alone(jobs: JobManager, job_ids: list[str]) -> list[float]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(ALONE_S, stop.set)
    return await _updates(jobs, job_ids, stop)


async def writer_p99(kind: str) -> dict[str, float]:
    """p99 of one writer's updates alone (before the prune and after it, pooled, so that the
    machine's slow spells weigh on both sides alike), and while a prune of the seeded jobs
    runs; the prune's pace meanwhile (jobs/s).
    """
    async with fresh_database(kind) as url:
        await _seeded(kind, url)
        jobs = JobManager.from_settings(Settings(database_url=url))
        try:
            running = [(await jobs.create_job(ACTOR, status="running")).id for _ in range(20)]
            quiet = await _alone(jobs, running)
            pruned = asyncio.Event()
            busy_task = asyncio.create_task(_updates(jobs, running, pruned))
            began = time.perf_counter()
            await prune(jobs, timedelta(days=1), batch=BATCH)
            rate = JOBS / (time.perf_counter() - began)
            pruned.set()
            busy = await busy_task
            quiet += await _alone(jobs, running)
        finally:
            await jobs.close()
    return {"alone": p99(quiet), "pruning": p99(busy), "rate": rate}


async def measure(kind: str) -> dict[str, float]:
    """Jobs pruned per second: ours and the raw loop, each on its own seeded database."""
    rates: dict[str, float] = {}
    async with fresh_database(kind) as url:
        await _seeded(kind, url)
        rates["raw"] = _raw_sqlite(url) if kind == "sqlite" else await _raw_postgres(url)
    async with fresh_database(kind) as url:
        await _seeded(kind, url)
        rates["ours"] = await _ours(url)
    return rates
