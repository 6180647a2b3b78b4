"""Two `jobpulse serve` processes on one PostgreSQL database, the second also as a replica of
two worker processes (`serve --workers 2`): a change made through one reaches the live
streams of the other, and a revocation closes the streams of both.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from jobpulse import Settings
from jobpulse.client import AsyncJobPulse, JobPulse
from jobpulse.keys import KeyManager
from jobpulse.storage.sql_store import open_store
from tests.api.test_stream import listen
from tests.e2e.conftest import cli, close, start

#: The second replica: one process, or two workers sharing its port.
SECOND_WORKERS = pytest.mark.parametrize("workers", [1, 2], ids=["one", "two_workers"])


@SECOND_WORKERS
def test_a_change_through_one_replica_reaches_a_stream_of_the_other(
    empty_database_url: str, workers: int
) -> None:
    if not empty_database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    first = start(empty_database_url)
    second = start(empty_database_url, expect_key=False, workers=workers)
    try:
        key = {"Authorization": f"Bearer {first.admin_key}"}
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=None)) as http,
            http.stream("GET", f"{second.url}/v1/jobs/stream", headers=key) as stream,
        ):
            assert stream.status_code == 200
            time.sleep(0.3)
            with JobPulse(first.url, first.admin_key) as client:
                made = client.create_job(job_type="across")
            started = time.monotonic()
            lines = stream.iter_lines()
            data = next(line for line in lines if line.startswith("data:"))
            took = time.monotonic() - started
        event = json.loads(data.removeprefix("data:"))
        assert (event["job_id"], event["to_status"]) == (made.id, "created")
        assert took < 2.0

        # Heartbeats, asked for, come across too.
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=None)) as http,
            http.stream(
                "GET", f"{second.url}/v1/jobs/stream?heartbeats=true", headers=key
            ) as stream,
        ):
            time.sleep(0.3)
            with JobPulse(first.url, first.admin_key) as client:
                running = client.create_job(status="running")
                client.heartbeat(running.id)
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: heartbeat"
            beat = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
            assert beat["job_id"] == running.id

        async def cancel_across() -> bool:
            async with (
                AsyncJobPulse(first.url, first.admin_key) as one,
                AsyncJobPulse(second.url, first.admin_key) as other,
            ):
                job = await one.create_job(status="running")
                waiting = asyncio.create_task(other.wait_cancelled(job.id))
                await asyncio.sleep(0.3)
                await one.cancel_job(job.id)
                return await asyncio.wait_for(waiting, 5)

        assert asyncio.run(cancel_across()) is True
    finally:
        close(first)
        close(second)


@SECOND_WORKERS
def test_the_keys_revoke_command_closes_open_streams_on_every_replica(
    empty_database_url: str, workers: int
) -> None:
    """`jobpulse keys revoke`, another process, closes the key's open streams within
    seconds: on SQLite's one `serve`, and on both `serve` processes of a PostgreSQL store.
    """
    url = empty_database_url
    if workers > 1 and not url.startswith("postgresql"):
        pytest.skip("workers share a PostgreSQL database")
    servers = [start(url)]
    if url.startswith("postgresql"):
        servers.append(start(url, expect_key=False, workers=workers))
    try:
        secret = cli("keys", "create", "--user", "al", "--org", "org-a", "--database-url", url)
        key = {"Authorization": f"Bearer {secret.stdout.strip()}"}

        async def listed() -> str:
            keys = KeyManager(open_store(Settings(database_url=url)))
            try:
                found = [k.id for k in await keys.list() if key["Authorization"][7:17] == k.prefix]
            finally:
                await keys.store.close()
            return found[0]

        key_id = asyncio.run(listed())

        async def revoke_while_streaming() -> list[float]:
            streams = [await listen(f"{server.url}/v1/jobs/stream", key) for server in servers]
            await asyncio.to_thread(cli, "keys", "revoke", key_id, "--database-url", url)
            revoked = time.monotonic()
            took = []
            for stream in streams:
                assert stream.task is not None
                await asyncio.wait_for(stream.task, 5.0)
                took.append(time.monotonic() - revoked)
                assert stream.received[-1].event == "revoked"
            return took

        took = asyncio.run(revoke_while_streaming())
        print(f"closed {', '.join(f'{t:.2f}' for t in took)} s after the command")
        assert all(t < 5.0 for t in took)
        for server in servers:
            assert httpx.get(f"{server.url}/v1/jobs", headers=key).status_code == 401
    finally:
        for server in servers:
            close(server)
