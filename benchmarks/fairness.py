"""Reads beside writes: heartbeats' latency on `jobpulse serve` alone, then while 50 clients
of one member key ask for heavy figures at once (a 366-day window by the day; 30 days by the
hour under a metadata filter), each honouring `Retry-After` when told to wait.

The jobs are spread over a year, half of them the member's: its year by the day reads the
user rollups (a scan of its 100,000 jobs before them), its 30 days filtered by metadata,
which no rollup keeps, scans its jobs of the month.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

from benchmarks.common import EPOCH, NO_STALE, SEED_STATUSES, admin_key, fresh_database, p99
from benchmarks.http import BIN, _free_port, _member_key, _serve, _stop
from benchmarks.stats import seed_spread

JOBS = int(os.environ.get("BENCH_FAIRNESS_JOBS", "200000"))
#: Seconds of each phase, and phases of each kind (alone, beside the readers).
SECONDS = float(os.environ.get("BENCH_FAIRNESS_SECONDS", "4"))
ROUNDS = int(os.environ.get("BENCH_FAIRNESS_ROUNDS", "4"))
#: Heartbeat callers, each sending its next heartbeat when the last is answered.
WRITERS = 4
#: Clients asking for heavy figures at once, all with the one member key.
READERS = 50
SPAN_S = 366 * 86400
USERS = 2
END = datetime.fromtimestamp(EPOCH + SPAN_S, UTC)
HEAVY = (
    {
        "since": (END - timedelta(days=366)).isoformat(),
        "until": END.isoformat(),
        "bucket": "day",
    },
    {
        "since": (END - timedelta(days=30)).isoformat(),
        "until": END.isoformat(),
        "bucket": "hour",
        "metadata.team": "search",
    },
)


def _running_ids(count: int) -> list[str]:
    """Ids of seeded running jobs of user-1 (the admin heartbeats them), newest first."""
    running = SEED_STATUSES.index("running")
    found = []
    for i in range(JOBS - 1, -1, -1):
        if i % USERS == 1 and (i // USERS) % len(SEED_STATUSES) == running:
            found.append(f"job-{i:012d}")
            if len(found) == count:
                break
    return found


async def _heartbeats(
    session: aiohttp.ClientSession, base: str, job_ids: list[str], until: float
) -> tuple[list[float], int]:
    """Latencies of one caller's heartbeats until `until` (monotonic), and how many failed
    (their time counts all the same).
    """
    took: list[float] = []
    failed = 0
    number = 0
    while time.monotonic() < until:
        job_id = job_ids[number % len(job_ids)]
        number += 1
        began = time.perf_counter()
        async with session.post(f"{base}/v1/jobs/{job_id}/heartbeat") as answer:
            await answer.read()
            failed += answer.status != 200
        took.append(time.perf_counter() - began)
    return took, failed


async def _writers(base: str, secret: str, seconds: float, into: Phase) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    job_ids = _running_ids(200)
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession(headers=headers) as session:
        runs = await asyncio.gather(
            *(_heartbeats(session, base, job_ids[n::WRITERS], until) for n in range(WRITERS))
        )
    for took, failed in runs:
        into.latencies += took
        into.failed += failed


@dataclass
class Answers:
    """The heavy readers' answers: how many of each status, and how long each figures
    answered (200) took, by its kind of request (its index in HEAVY).
    """

    statuses: Counter[str] = field(default_factory=Counter)
    took: dict[int, list[float]] = field(default_factory=lambda: {n: [] for n in range(len(HEAVY))})

    def add(self, other: Answers) -> None:
        self.statuses.update(other.statuses)
        for kind, took in other.took.items():
            self.took[kind] += took


async def _reader(
    session: aiohttp.ClientSession, base: str, turn: int, stop: asyncio.Event, seen: Answers
) -> None:
    """Ask for heavy figures until `stop`; wait as long as a 429 says before asking again."""
    while not stop.is_set():
        kind = turn % len(HEAVY)
        turn += 1
        began = time.perf_counter()
        async with session.get(f"{base}/v1/stats", params=HEAVY[kind]) as answer:
            await answer.read()
            seen.statuses[str(answer.status)] += 1
            if answer.status == 200:
                seen.took[kind].append(time.perf_counter() - began)
            if answer.status == 429:
                with contextlib.suppress(TimeoutError):
                    wait = float(answer.headers["Retry-After"])
                    await asyncio.wait_for(stop.wait(), wait)


@contextlib.asynccontextmanager
async def _readers(base: str, secret: str) -> AsyncIterator[Answers]:
    """READERS clients asking for heavy figures while the block runs: their answers."""
    seen = Answers()
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {secret}"}
    timeout = aiohttp.ClientTimeout(total=600)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as s:
        tasks = [asyncio.create_task(_reader(s, base, n, stop, seen)) for n in range(READERS)]
        try:
            yield seen
        finally:
            stop.set()
            await asyncio.gather(*tasks)


@dataclass
class Phase:
    """Heartbeats of one kind of phase, over its rounds."""

    latencies: list[float] = field(default_factory=list)
    failed: int = 0

    def figures(self) -> dict[str, float]:
        return {
            "p50": statistics.median(self.latencies),
            "p99": p99(self.latencies),
            "writes_per_s": len(self.latencies) / (SECONDS * ROUNDS),
            "failed": self.failed,
        }


async def _rounds(base: str, admin: str, member: str) -> dict[str, dict[str, float]]:
    alone, loaded = Phase(), Phase()
    seen = Answers()
    await _writers(base, admin, 3, Phase())  # warm: connections, caches, prepared statements
    for _ in range(ROUNDS):
        await _writers(base, admin, SECONDS, alone)
        async with _readers(base, member) as answers:
            await _writers(base, admin, SECONDS, loaded)
        seen.add(answers)
    answered = {f"p50_{kind}": statistics.median(took) for kind, took in seen.took.items() if took}
    return {
        "alone": alone.figures(),
        "loaded": loaded.figures(),
        "readers": dict(seen.statuses),
        "answered": answered,
    }


async def measure(
    kind: str, configs: dict[str, dict[str, str]]
) -> dict[str, dict[str, dict[str, float]]]:
    """For each of `configs` (a name and `serve`'s environment) on one seeded database:
    heartbeats' p50, p99 (seconds), rate and failures, alone and beside the heavy readers, in
    ROUNDS alternating phases of SECONDS each (a drift of the machine falls on both alike);
    the readers' answers by status, and the median time a figures answer took, by the kind of
    request (`p50_0`: a year by the day, `p50_1`: 30 days by the hour, filtered).
    """
    found = {}
    async with fresh_database(kind) as url:
        await seed_spread(url, JOBS, SPAN_S, USERS)
        admin, member = await admin_key(url), await _member_key(url)
        for name, env in configs.items():
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            command = [str(BIN / "jobpulse"), "serve", "--port", str(port), "--database-url", url]
            process: subprocess.Popen[bytes] = _serve(
                [*command, "--no-access-log"], f"{base}/healthz", NO_STALE | env
            )
            try:
                found[name] = await _rounds(base, admin, member)
            finally:
                _stop(process)
    return found
