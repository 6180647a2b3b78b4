"""Webhook delivery: callbacks/s that `jobpulse worker` drains from a backlog of 5,000 outbox
events next to a raw POST loop of the same client (aiohttp) to the same receiver at the same
concurrency, in alternating rounds, both timed by the receiver (first to last arrival); a raw
httpx loop as a second reference line; and the latency from a terminal PATCH returning to
the receiver getting its callback, at light load.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time
from datetime import UTC, datetime

import aiohttp
import httpx

from benchmarks.common import fresh_database, p99
from benchmarks.http import BIN, _free_port, _member_key, _serve, _stop, cpu_seconds, serve_asgi
from jobpulse import Settings
from jobpulse.domain import OutboxMessage
from jobpulse.storage.outbox import insert_messages, pending_count
from jobpulse.storage.sql_store import open_store
from jobpulse.webhooks import payload

BACKLOG = 5000
CONCURRENCY = 16
ROUNDS = int(os.environ.get("BENCH_WEBHOOK_ROUNDS", "3"))
BODY = {"type": "job.completed", "job_id": "", "status": "completed", "metadata": {"k": "v"}}
#: Deliveries are signed, as in production (the raw loops sign nothing).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: The worker as an operator runs it, with the loop's concurrency to the one receiver (its
#: per-host cap included: the default, 8, would halve it).
WORKER_ENV = {
    "JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
    "JOBPULSE_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
    "JOBPULSE_WEBHOOK_HOST_CONCURRENCY": str(CONCURRENCY),
    "JOBPULSE_WEBHOOK_SECRET": SECRET,
}


def _receiver() -> tuple[subprocess.Popen[bytes], str]:
    process, port = serve_asgi("benchmarks.receiver:app", "/")
    return process, f"http://127.0.0.1:{port}/hook"


async def _arrival_rate(url: str, prefix: str) -> float:
    """Callbacks/s of a run, as the receiver saw them: the first to the last arrival of the
    run's BACKLOG callbacks (their job ids start with `prefix`), each one there.
    """
    async with httpx.AsyncClient() as http:
        arrivals = (await http.get(url.replace("/hook", "/log"))).json()["arrivals"]
    times: list[float] = [at for job_id, at in arrivals.items() if job_id.startswith(prefix)]
    assert len(times) == BACKLOG, f"{BACKLOG - len(times)} of {prefix} missing"
    return (BACKLOG - 1) / (max(times) - min(times))


async def _raw_aiohttp(url: str, prefix: str) -> tuple[float, float]:
    """The fastest fair loop: the delivery worker's own client, pooled, 16 at a time; its
    rate and CPU seconds a POST.
    """
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    began = time.process_time()
    async with aiohttp.ClientSession(connector=connector) as http:
        pending = iter(range(BACKLOG))

        async def worker() -> None:
            for number in pending:
                body = json.dumps(BODY | {"job_id": f"{prefix}{number}"})
                headers = {"content-type": "application/json"}
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    cpu = (time.process_time() - began) / BACKLOG
    return await _arrival_rate(url, prefix), cpu


async def _raw_httpx(url: str) -> float:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
        pending = iter(range(BACKLOG))

        async def worker() -> None:
            for number in pending:
                body = json.dumps(BODY | {"job_id": f"httpx-{number}"})
                response = await http.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return BACKLOG / (time.perf_counter() - began)


def _start_worker(database_url: str) -> subprocess.Popen[bytes]:
    """`jobpulse worker` on the database, once it is delivering."""
    worker = subprocess.Popen(
        [str(BIN / "jobpulse"), "worker", "--database-url", database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ | WORKER_ENV,
    )
    assert worker.stdout is not None
    assert b"delivering" in worker.stdout.readline(), "the worker did not start"
    return worker


async def _worker_drain(kind: str, url: str, prefix: str) -> tuple[float, float]:
    """`jobpulse worker` draining BACKLOG callbacks queued at once; its rate and CPU seconds
    a callback.
    """
    async with fresh_database(kind) as database_url:
        worker = _start_worker(database_url)
        store = open_store(Settings(database_url=database_url))
        try:
            now = datetime.now(UTC)
            messages = [
                OutboxMessage(
                    payload.new_webhook_id(),
                    "job.completed",
                    url,
                    BODY | {"job_id": f"{prefix}{n}"},
                    now,
                    None,
                )
                for n in range(BACKLOG)
            ]
            began = cpu_seconds(worker.pid)
            await store.database.write(insert_messages, messages)
            while await store.database.read(pending_count) > 0:  # noqa: ASYNC110 - the store says
                await asyncio.sleep(0.05)
            cpu = (cpu_seconds(worker.pid) - began) / BACKLOG
        finally:
            _stop(worker)
            await store.close()
    return await _arrival_rate(url, prefix), cpu


async def throughput(kind: str, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Callbacks/s and CPU seconds a callback, a round each: the worker from a backlog and
    the raw aiohttp loop, alternating; the raw httpx loop once.
    """
    process, url = _receiver()
    found: dict[str, list[float]] = {"raw": [], "raw_cpu": [], "ours": [], "ours_cpu": []}
    try:
        for n in range(rounds):
            for side, (rate, cpu) in (
                ("raw", await _raw_aiohttp(url, f"raw-{kind}-{n}-")),
                ("ours", await _worker_drain(kind, url, f"{kind}-{n}-")),
            ):
                found[side].append(rate)
                found[f"{side}_cpu"].append(cpu)
        found["httpx"] = [await _raw_httpx(url)]
        return found
    finally:
        _stop(process)


async def latency(kind: str, jobs: int = 200) -> dict[str, float]:
    """p50 and p99 seconds from a terminal PATCH returning to its callback arriving."""
    process, hook = _receiver()
    async with fresh_database(kind) as database_url:
        port = _free_port()
        server = _serve(
            [
                str(BIN / "jobpulse"),
                "serve",
                "--port",
                str(port),
                "--database-url",
                database_url,
                "--no-access-log",
            ],
            f"http://127.0.0.1:{port}/healthz",
            env={"JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true"},
        )
        try:
            key = await _member_key(database_url)
            returned: dict[str, float] = {}
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=base, headers=headers) as api:
                for _ in range(jobs):
                    created = await api.post(
                        "/v1/jobs", json={"status": "running", "callback_url": hook}
                    )
                    job_id = created.json()["id"]
                    await api.patch(f"/v1/jobs/{job_id}", json={"status": "completed"})
                    returned[job_id] = time.time()
                    await asyncio.sleep(0.02)
                await asyncio.sleep(1)
                log = (await api.get(hook.replace("/hook", "/log"))).json()["arrivals"]
        finally:
            _stop(server)
            _stop(process)
    delays = [log[job_id] - at for job_id, at in returned.items() if job_id in log]
    assert len(delays) == jobs, f"{jobs - len(delays)} callbacks missing"
    return {"p50": statistics.median(delays), "p99": p99(delays)}
