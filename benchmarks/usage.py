"""LLM usage: recording calls against changing jobs, and `/v1/stats` with usage at scale.

`ratio`: 16 concurrent usage records of each job (one job after another) against 16 callers
walking jobs through their transitions, on one database in one run, alternating rounds.
`stats`: `/v1/stats` (30 days by the day; the last 24 hours and 30 days by the hour, the
latter also with parts of an hour at its edges; a member's 30 days, informational) on
`jobpulse serve` over jobs spread over 30 days, each with one LLM call of one of three models.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import BigInteger, Connection, case, cast, func, insert, literal, select

from benchmarks.common import NO_STALE, admin_key, fresh_database, p99, seed
from benchmarks.http import BIN, _free_port, _stop
from benchmarks.stats import END, SAMPLES, seed_spread
from benchmarks.transitions import ACTOR, STEPS
from jobpulse import JobManager, Settings
from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS
from jobpulse.stats.windows import Bucket
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.engine import run_in_transaction
from jobpulse.storage.feature_tables import llm_usage
from jobpulse.storage.rollups import bucket_of, floor_to
from jobpulse.storage.tables import jobs
from jobpulse.storage.usage_rollups import add_rows
from jobpulse.usage.figures import SUMMED, Facet
from jobpulse.usage.prices import default_prices
from jobpulse.usage.recorder import UsageRecorder

#: Records at once on each job.
RECORDS = 16


async def _transitions(manager: JobManager, job_ids: list[str]) -> float:
    pending: Iterator[str] = iter(job_ids)

    async def worker() -> None:
        for job_id in pending:
            for step in STEPS:
                await manager.update_job(ACTOR, job_id, status=step)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(RECORDS)))
    return len(job_ids) * len(STEPS) / (time.perf_counter() - began)


async def _records(recorder: UsageRecorder, job_ids: list[str]) -> float:
    began = time.perf_counter()
    for job_id in job_ids:
        await asyncio.gather(
            *(
                recorder.record(
                    ACTOR,
                    job_id,
                    provider="anthropic",
                    model="claude-sonnet-4-5",
                    input_tokens=1200 + n,
                    output_tokens=300,
                    cache_read_tokens=5000,
                    ttft_ns=400_000_000,
                    duration_ns=3_000_000_000,
                )
                for n in range(RECORDS)
            )
        )
    return len(job_ids) * RECORDS / (time.perf_counter() - began)


async def measure_ratio(kind: str, jobs_per_round: int, rounds: int) -> dict[str, float]:
    """Median records/s and transitions/s over alternating rounds on one database."""
    async with fresh_database(kind) as url:
        job_ids = await seed(url, jobs_per_round * rounds * 2, users=1, status="created")
        manager = JobManager.from_settings(Settings(database_url=url))
        recorder = UsageRecorder(manager, default_prices())
        await manager.get_job(ACTOR, job_ids[0])  # connect before the clock starts
        moves, records = [], []
        chunks = [job_ids[n : n + jobs_per_round] for n in range(0, len(job_ids), jobs_per_round)]
        try:
            for number in range(rounds):
                moves.append(await _transitions(manager, chunks[2 * number]))
                # Records on jobs that are running, as an agent's calls are.
                running = chunks[2 * number + 1]
                await asyncio.gather(
                    *(manager.update_job(ACTOR, job_id, status="running") for job_id in running)
                )
                records.append(await _records(recorder, running[: max(1, len(running) // 4)]))
        finally:
            await manager.close()
    return {"records": statistics.median(records), "transitions": statistics.median(moves)}


def _seed_calls(connection: Connection) -> None:
    """One call for every job (one of three models by the job's number, at its creation),
    and the usage rollups of those calls, as recording them would have left them.
    """
    number = cast(func.substr(jobs.c.id, 5), BigInteger)
    pick = number % 3
    columns: dict[str, Any] = {
        "job_id": jobs.c.id,
        "id": literal("call-") + jobs.c.id,
        "organization_id": jobs.c.organization_id,
        "job_type": jobs.c.job_type,
        "provider": case((pick == 0, "anthropic"), else_="openai"),
        "model": case((pick == 0, "claude-sonnet-4-5"), (pick == 1, "gpt-4.1"), else_="gpt-5"),
        "input_tokens": 1000 + number % 5000,
        "output_tokens": 100 + number % 900,
        "cache_read_tokens": number % 3000,
        "cache_write_tokens": literal(0),
        "cost_pusd": (1000 + number % 5000) * 3_000_000,
        "cost_source": literal("prices"),
        "ttft_ns": (number % 5000) * 1_000_000,
        "duration_ns": 1 + (number % 60000) * 1_000_000,
        "recorded_at": jobs.c.created_at,
        "late": literal(False),
    }
    connection.execute(insert(llm_usage).from_select(list(columns), select(*columns.values())))
    u = llm_usage.c
    hour = floor_to(dialect_of(connection), u.recorded_at, Bucket.HOUR)
    ttft, duration = bucket_of(u.ttft_ns, TTFT_BUCKETS), bucket_of(u.duration_ns, DURATION_BUCKETS)
    groups = (u.organization_id, hour, u.job_type, u.provider, u.model, ttft, duration)
    summed = (
        func.count(),
        *(func.sum(u[kind]) for kind in SUMMED[1:5]),
        func.sum(u.cost_pusd),
        literal(0),
        func.sum(u.output_tokens),
        func.sum(u.duration_ns),
    )
    rows: dict[tuple[Any, ...], list[int]] = {}
    for row in connection.execute(select(*groups, *summed).group_by(*groups)):
        org, start, job_type, provider, model, ttft_at, duration_at, *sums = row
        moment = _hour(start)
        where = (moment, job_type, provider, model)
        numbers = [int(value or 0) for value in sums]
        for key, added in (
            ((org, Facet.SUMS.value, *where, -1), numbers),
            ((org, Facet.TTFT.value, *where, ttft_at), [numbers[0]] + [0] * 8),
            ((org, Facet.DURATION.value, *where, duration_at), [numbers[0]] + [0] * 8),
        ):
            found = rows.setdefault(key, [0] * len(SUMMED))
            for at, value in enumerate(added):
                found[at] += value
    add_rows(connection, rows)


#: The figures asked for: 30 days by the day, the last day by the hour, 30 days by the hour;
#: and 30 days by the hour as `until=now` asks it, in parts of an hour at both edges (scanned).
QUERIES = {
    "30d by day": {
        "since": (END - timedelta(days=30)).isoformat(),
        "until": END.isoformat(),
        "bucket": "day",
    },
    "24h by hour": {"since": (END - timedelta(days=1)).isoformat(), "until": END.isoformat()},
    "30d by hour": {"since": (END - timedelta(days=30)).isoformat(), "until": END.isoformat()},
    "30d by hour, edges": {
        "since": (END - timedelta(days=30, minutes=-17)).isoformat(),
        "until": (END - timedelta(minutes=23)).isoformat(),
    },
}
#: A member's view (one user of USERS: a scan, the rollups keep no user), informational.
MEMBER = "user-3"
MEMBER_QUERIES = {"member 30d by day": QUERIES["30d by day"]}
MEMBER_SAMPLES = 5


def _start(command: list[str], probe: str, seconds: float = 300) -> subprocess.Popen[bytes]:
    """`serve`, once it answers (a large seeded database on a busy machine takes a while)."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | NO_STALE
    )
    _wait(probe, seconds)
    return process


def _wait(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {seconds:g} s")


def _check(client: httpx.Client, count: int) -> None:
    usage = client.get("/v1/stats", params=QUERIES["30d by day"]).json()["usage"]
    assert usage["calls"] == count, f"seeded {count} calls, /v1/stats counts {usage['calls']}"


def _timed(
    client: httpx.Client, params: dict[str, str], samples: int = SAMPLES
) -> dict[str, float]:
    for _ in range(3):  # warm: caches, prepared statements
        answer = client.get("/v1/stats", params=params)
        answer.raise_for_status()
        assert answer.json()["usage"]["calls"] > 0, f"{params}: no call, a bad seed"
    took = []
    for _ in range(samples):
        began = time.perf_counter()
        client.get("/v1/stats", params=params).raise_for_status()
        took.append(time.perf_counter() - began)
    return {"p50": statistics.median(took), "p99": p99(took)}


def _hour(value: Any) -> datetime:
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


async def measure_stats(kind: str, count: int) -> dict[str, dict[str, float]]:
    """p50 and p99 (seconds) of `/v1/stats` (with its usage) at `count` jobs and calls: an
    admin's (QUERIES), and a member's (MEMBER_QUERIES, fewer samples).
    """
    async with fresh_database(kind) as url:
        await seed_spread(url, count)
        await run_in_transaction(url, _seed_calls)
        await run_in_transaction(url, lambda c: c.exec_driver_sql("ANALYZE"))
        secrets = {
            "admin": await admin_key(url),
            "member": await admin_key(url, MEMBER, is_admin=False),
        }
        port = _free_port()
        command = [str(BIN / "jobpulse"), "serve", "--port", str(port), "--database-url", url]
        process = _start([*command, "--no-access-log"], f"http://127.0.0.1:{port}/healthz")
        try:
            base = f"http://127.0.0.1:{port}"
            found: dict[str, dict[str, float]] = {}
            for who, queries, samples in (
                ("admin", QUERIES, SAMPLES),
                ("member", MEMBER_QUERIES, MEMBER_SAMPLES),
            ):
                headers = {"Authorization": f"Bearer {secrets[who]}"}
                with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                    if who == "admin":
                        _check(client, count)
                    found |= {name: _timed(client, q, samples) for name, q in queries.items()}
            return found
        finally:
            _stop(process)
