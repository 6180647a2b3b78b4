"""A drain of webhook deliveries in machine instructions: what one callback costs the delivery
worker (`Deliverer`, as `jobpulse worker` runs it) and the raw aiohttp loop of the webhooks
section, counted by valgrind's callgrind, which the machine's load does not move.

Each side runs twice under callgrind, sending SMALL and then LARGE callbacks to the
benchmarks' receiver (the worker drains an outbox filled before it starts); the difference
over the extra callbacks is what one costs, the event loop, aiohttp and, on SQLite, the
database's engine and writer thread included (PostgreSQL's server is another process).

    python -m benchmarks.drain [sqlite|postgresql ...]
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import fresh_database
from benchmarks.http import _stop
from benchmarks.instructions import callgrind
from benchmarks.webhooks import BODY, WORKER_ENV, _receiver
from jobpulse import Settings
from jobpulse.domain import OutboxMessage
from jobpulse.storage.outbox import insert_messages
from jobpulse.storage.sql_store import open_store
from jobpulse.webhooks import payload

HERE = Path(__file__).resolve().parent.parent
#: Callbacks of the two drains: a drain of a few hundred has too few claims to weigh them as a
#: long drain does (one claim of ten reading on past a share weighed as much as the rest).
SMALL = 400
LARGE = 2000
_ONE = """
import asyncio, json, sys, uvloop
from benchmarks.webhooks import BODY, CONCURRENCY
from jobpulse import Settings
from jobpulse.heap import settle_heap
from jobpulse.storage.sql_store import open_store
from jobpulse.telemetry import setup_tracing
from jobpulse.webhooks.delivery import Deliverer, new_client

async def worker(url, database_url, count):
    setup_tracing()  # as `jobpulse worker` settles it
    settings = Settings(database_url=database_url)
    store = open_store(settings)
    done = asyncio.Event()
    recorded = 0
    def tally(outcomes):
        nonlocal recorded
        recorded += len(outcomes)
        if recorded >= count:
            done.set()
    record, claim = store.record_attempts, store.claim_outbox
    async def recording(outcomes):
        await record(outcomes)
        tally(outcomes)
    async def claiming(now, lease, limit, shares, outcomes=()):
        claimed = await claim(now, lease, limit, shares, outcomes)
        tally(outcomes)
        return claimed
    store.record_attempts, store.claim_outbox = recording, claiming
    async with new_client(settings) as http:
        deliverer = Deliverer(store, settings, http)
        settle_heap(settings.gc_threshold)  # as `jobpulse worker` does once started
        task = asyncio.create_task(deliverer.run())
        await done.wait()
        await deliverer.stop(task)
    await store.close()

async def raw(url, _database_url, count):
    import aiohttp
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:
        pending = iter(range(count))
        async def one():
            for number in pending:
                body = json.dumps(BODY | {"job_id": f"raw-{number}"})
                headers = {"content-type": "application/json"}
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    response.raise_for_status()
        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))

side, url, database_url, count = sys.argv[1:]
uvloop.run({"worker": worker, "raw": raw}[side](url, database_url, int(count)))
"""


async def _fill(database_url: str, url: str, count: int) -> None:
    store = open_store(Settings(database_url=database_url))
    try:
        now = datetime.now(UTC)
        messages = [
            OutboxMessage(
                payload.new_webhook_id(), "job.completed", url, BODY | {"job_id": f"d-{n}"}, now
            )
            for n in range(count)
        ]
        await store.database.write(insert_messages, messages)
    finally:
        await store.close()


def _instructions(side: str, url: str, database_url: str, count: int) -> int:
    return callgrind(HERE, _ONE, [side, url, database_url, str(count)], WORKER_ENV)


async def _drained(side: str, kind: str, url: str, count: int) -> int:
    async with fresh_database(kind) as database_url:
        if side == "worker":
            await _fill(database_url, url, count)
        return await asyncio.to_thread(_instructions, side, url, database_url, count)


async def per_callback(side: str, kind: str, url: str) -> float:
    """Instructions a callback of `side` ("worker" or "raw") on a `kind` database."""
    small = await _drained(side, kind, url, SMALL)
    large = await _drained(side, kind, url, LARGE)
    return (large - small) / (LARGE - SMALL)


async def main(kinds: list[str]) -> None:
    process, url = _receiver()
    try:
        raw = await per_callback("raw", "sqlite", url)
        print(f"raw aiohttp loop   instructions/callback {raw:9.0f}", flush=True)
        for kind in kinds:
            ours = await per_callback("worker", kind, url)
            print(
                f"{kind:10} worker instructions/callback {ours:9.0f}  worker/raw {ours / raw:5.2f}",
                flush=True,
            )
    finally:
        _stop(process)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["sqlite", "postgresql"]))
