"""Webhook delivery: callbacks/s from a backlog of 5,000 outbox events next to a raw POST
loop of the same client (aiohttp) to the same receiver at the same concurrency, with a raw
httpx loop as a second reference line; and the latency from a terminal PATCH returning to
the receiver getting its callback, at light load.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
from datetime import UTC, datetime

import aiohttp
import httpx

from benchmarks.common import fresh_database, p99
from benchmarks.http import BIN, _free_port, _member_key, _serve, _stop, serve_asgi
from jobpulse import Settings
from jobpulse.domain import OutboxMessage
from jobpulse.storage.outbox import insert_messages, pending_count
from jobpulse.storage.sql_store import open_store
from jobpulse.webhooks import payload
from jobpulse.webhooks.delivery import Deliverer, new_client

BACKLOG = 5000
CONCURRENCY = 16
BODY = {"type": "job.completed", "job_id": "", "status": "completed", "metadata": {"k": "v"}}


def _receiver() -> tuple[subprocess.Popen[bytes], str]:
    process, port = serve_asgi("benchmarks.receiver:app", "/")
    return process, f"http://127.0.0.1:{port}/hook"


async def _raw_aiohttp(url: str) -> float:
    """The fastest fair loop: the delivery worker's own client, pooled, 16 at a time."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:
        pending = iter(range(BACKLOG))

        async def worker() -> None:
            for number in pending:
                body = json.dumps(BODY | {"job_id": f"raw-{number}"})
                headers = {"content-type": "application/json"}
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return BACKLOG / (time.perf_counter() - began)


async def _raw_httpx(url: str) -> float:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
        pending = iter(range(BACKLOG))

        async def worker() -> None:
            for number in pending:
                body = json.dumps(BODY | {"job_id": f"raw-{number}"})
                response = await http.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return BACKLOG / (time.perf_counter() - began)


async def _backlog(kind: str, url: str) -> float:
    async with fresh_database(kind) as database_url:
        settings = Settings(
            database_url=database_url, webhook_allow_private=True, webhook_concurrency=CONCURRENCY
        )
        store = open_store(settings)
        now = datetime.now(UTC)
        messages = [
            OutboxMessage(
                payload.new_webhook_id(),
                "job.completed",
                url,
                BODY | {"job_id": f"{kind}-{n}"},
                now,
                None,
            )
            for n in range(BACKLOG)
        ]
        await store.database.write(insert_messages, messages)
        async with new_client(settings) as sender:
            deliverer = Deliverer(store, settings, sender)
            began = time.perf_counter()
            worker = asyncio.create_task(deliverer.run())  # as `serve` runs it
            while await store.database.read(pending_count) > 0:  # noqa: ASYNC110 - the store says
                await asyncio.sleep(0.01)
            rate = BACKLOG / (time.perf_counter() - began)
            await deliverer.stop(worker)
        await store.close()
        return rate


async def throughput(kind: str) -> dict[str, float]:
    """Callbacks/s: the delivery worker from a backlog, the raw aiohttp and httpx loops."""
    process, url = _receiver()
    try:
        return {
            "raw": await _raw_aiohttp(url),
            "httpx": await _raw_httpx(url),
            "ours": await _backlog(kind, url),
        }
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
