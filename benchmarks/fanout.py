"""SSE fan-out: 200 open `/v1/jobs/stream` clients while transitions are applied through
`jobpulse serve` (the server on one core, this client on the other).

- Lag: transitions paced at 200 a second; each event's delay from the moment its change
  was recorded (the event's `at`) to its arrival, at every tenth client (all of them count
  what they receive).
- Cost: transitions a second at full speed (16 concurrent callers, PATCH created→running)
  with the 200 streams open, and with none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp

from benchmarks.common import NO_STALE, admin_key, fresh_database, p99, seed
from benchmarks.http import BIN, LOAD_CPU, SERVER_CPU, _free_port, _serve, _stop, pinned

STREAMS = 200
RATE = 200
LAG_SECONDS = 5.0
FULL_SECONDS = float(os.environ.get("BENCH_FANOUT_SECONDS", "5"))
CALLERS = 16


#: Seeded created jobs, enough for every phase.
SEEDED = 40_000


@contextlib.asynccontextmanager
async def _served(kind: str) -> AsyncIterator[tuple[str, str, list[str]]]:
    async with fresh_database(kind) as url:
        ids = await seed(url, SEEDED, users=1, status="created")
        secret = await admin_key(url)
        port = _free_port()
        command = [str(BIN / "jobpulse"), "serve", "--port", str(port), "--database-url", url]
        probe = f"http://127.0.0.1:{port}/healthz"
        process = _serve([*pinned(SERVER_CPU), *command, "--no-access-log"], probe, NO_STALE)
        try:
            yield f"http://127.0.0.1:{port}", secret, ids
        finally:
            _stop(process)


#: Every SAMPLE_EVERY-th stream measures lag; the others only count what they receive, so
#: that this client (one core, like the server) is not the bottleneck it measures.
SAMPLE_EVERY = 10


async def _listen(
    session: aiohttp.ClientSession,
    url: str,
    lags: list[float] | None,
    received: list[int],
    ready: asyncio.Event,
) -> None:
    async with session.get(f"{url}/v1/jobs/stream") as response:
        ready.set()
        async for chunk in response.content.iter_any():
            arrived = time.time()
            received[0] += chunk.count(b"data: ")
            if lags is None:
                continue
            at = chunk.find(b'"at":"')
            while at >= 0:
                end = chunk.index(b'"', at + 6)
                lags.append(
                    arrived - datetime.fromisoformat(chunk[at + 6 : end].decode()).timestamp()
                )
                at = chunk.find(b'"at":"', end)


async def _streams(
    session: aiohttp.ClientSession, url: str, lags: list[float], received: list[int]
) -> list[asyncio.Task[None]]:
    tasks = []
    for number in range(STREAMS):
        ready = asyncio.Event()
        sampled = lags if number % SAMPLE_EVERY == 0 else None
        tasks.append(asyncio.create_task(_listen(session, url, sampled, received, ready)))
        await ready.wait()
    await asyncio.sleep(0.5)
    return tasks


async def _paced(session: aiohttp.ClientSession, url: str, ids: list[str]) -> None:
    """PATCH each job to running, RATE a second."""
    began = time.perf_counter()
    for number, job_id in enumerate(ids):
        delay = began + number / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        async with session.patch(f"{url}/v1/jobs/{job_id}", json={"status": "running"}) as r:
            assert r.status == 200, await r.text()


async def _full_speed(session: aiohttp.ClientSession, url: str, ids: list[str]) -> float:
    """Transitions a second for FULL_SECONDS, CALLERS at a time."""
    pending = iter(ids)
    done = 0
    deadline = time.perf_counter() + FULL_SECONDS

    async def caller() -> None:
        nonlocal done
        for job_id in pending:
            if time.perf_counter() > deadline:
                return
            async with session.patch(
                f"{url}/v1/jobs/{job_id}", json={"status": "running"}
            ) as response:
                assert response.status == 200
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return done / (time.perf_counter() - began)


async def measure(kind: str) -> dict[str, float]:
    """Lag p50/p99 (seconds), and transitions a second with and without the streams."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {LOAD_CPU})
    async with _served(kind) as (url, secret, ids):
        headers = {"Authorization": f"Bearer {secret}"}
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=timeout
        ) as session:
            paced = int(RATE * LAG_SECONDS)
            half = (len(ids) - paced) // 2
            quiet = await _full_speed(session, url, ids[:half])
            lags: list[float] = []
            received = [0]
            streams = await _streams(session, url, lags, received)
            await _paced(session, url, ids[half : half + paced])
            await asyncio.sleep(1.0)
            paced_lags = list(lags)
            delivered = received[0]
            busy = await _full_speed(session, url, ids[half + paced :])
            for task in streams:
                task.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
    expected = paced * STREAMS
    return {
        "p50": statistics.median(paced_lags),
        "p99": p99(paced_lags),
        "delivered": delivered / expected,
        "quiet": quiet,
        "busy": busy,
    }
