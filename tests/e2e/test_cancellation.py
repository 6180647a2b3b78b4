"""A job cancelled through the API stops the run that reports it, through a served jobpulse:
the async form within max(1 s, the heartbeat interval), the sync form at its next call, and
the job keeps exactly one terminal event, `cancelled`."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobpulse.client import AsyncJobPulse, JobCancelled, JobPulse
from jobpulse.tracking import Run
from tests.e2e.conftest import Server, close, start

HEARTBEAT_S = 0.3
#: How long a tracked run would go on uncancelled (it loops on short sleeps, as agents do).
STEPS = 400


async def busy_async() -> None:
    for _ in range(STEPS):
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path: Path = tmp_path_factory.mktemp("cancel") / "jobpulse.db"
    served = start(f"sqlite:///{path}")
    yield served
    close(served)


def terminal_events(client: JobPulse, job_id: str) -> list[str]:
    terminal = {"completed", "failed", "cancelled", "expired"}
    return [
        event.to_status
        for event in client.list_events(job_id)
        if event.applied and event.to_status in terminal and event.from_status != event.to_status
    ]


def cancel_when_running(server: Server, job_type: str) -> dict[str, float]:
    """Cancel the first running job of `job_type` through the API, from another thread;
    when it was cancelled (time.monotonic()) lands in the returned dict.
    """
    when: dict[str, float] = {}

    def cancel() -> None:
        with JobPulse(server.url, server.admin_key) as admin:
            while not (found := admin.list_jobs(job_type=job_type, status="running")):
                time.sleep(0.05)
            time.sleep(0.2)
            admin.cancel_job(found[0].id)
            when["at"] = time.monotonic()

    threading.Thread(target=cancel, daemon=True).start()
    return when


def test_an_async_run_is_stopped_soon_after_its_job_is_cancelled(server: Server) -> None:
    cancelled = cancel_when_running(server, "async-long")

    job_ids: list[str] = []

    async def tracked(client: AsyncJobPulse) -> None:
        async with client.track(job_type="async-long", heartbeat_s=HEARTBEAT_S) as job:
            assert job.id is not None
            job_ids.append(job.id)
            await busy_async()

    async def run() -> tuple[str, float]:
        async with AsyncJobPulse(server.url, server.admin_key) as client:
            with pytest.raises(JobCancelled):
                await tracked(client)
            return job_ids[0], time.monotonic()

    job_id, stopped = asyncio.run(run())
    assert stopped - cancelled["at"] <= max(1.0, HEARTBEAT_S)
    with JobPulse(server.url, server.admin_key) as client:
        assert client.get_job(job_id).status == "cancelled"
        assert terminal_events(client, job_id) == ["cancelled"]


def test_a_run_waiting_on_its_stream_stops_at_once(server: Server) -> None:
    cancelled = cancel_when_running(server, "streamed")
    job_ids: list[str] = []

    async def tracked(client: AsyncJobPulse) -> None:
        # No heartbeat: the live stream alone tells the run.
        async with client.track(job_type="streamed", cancel_stream=True) as job:
            assert job.id is not None
            job_ids.append(job.id)
            await busy_async()

    async def run() -> float:
        async with AsyncJobPulse(server.url, server.admin_key) as client:
            with pytest.raises(JobCancelled):
                await tracked(client)
            return time.monotonic()

    stopped = asyncio.run(run())
    assert stopped - cancelled["at"] <= 0.5
    with JobPulse(server.url, server.admin_key) as client:
        assert terminal_events(client, job_ids[0]) == ["cancelled"]


def test_waiting_for_a_cancel_on_a_job_that_ends_otherwise(server: Server) -> None:
    async def run() -> tuple[bool, bool]:
        async with AsyncJobPulse(server.url, server.admin_key) as client:
            done = await client.create_job(status="running")
            waiting = asyncio.create_task(client.wait_cancelled(done.id))
            await asyncio.sleep(0.3)
            await client.update_job(done.id, status="completed")
            ended = await asyncio.wait_for(waiting, 5)
            gone = await client.create_job()
            await client.cancel_job(gone.id)
            already = await asyncio.wait_for(client.wait_cancelled(gone.id), 5)
            return ended, already

    assert asyncio.run(run()) == (False, True)


def test_a_decorated_coroutine_ends_in_job_cancelled(server: Server) -> None:
    cancelled = cancel_when_running(server, "decorated")

    async def run() -> None:
        async with AsyncJobPulse(server.url, server.admin_key) as client:

            @client.track(job_type="decorated", heartbeat_s=HEARTBEAT_S)
            async def work() -> None:
                await busy_async()

            with pytest.raises(JobCancelled):
                await work()

    asyncio.run(run())
    assert "at" in cancelled


def test_a_sync_run_raises_at_its_next_call(server: Server) -> None:
    cancelled = cancel_when_running(server, "sync-long")
    runs: list[Run] = []

    def tracked(client: JobPulse) -> None:
        with client.track(job_type="sync-long", heartbeat_s=HEARTBEAT_S) as run:
            runs.append(run)
            for _ in range(STEPS):
                time.sleep(0.05)
                run.raise_if_cancelled()

    with JobPulse(server.url, server.admin_key) as client:
        with pytest.raises(JobCancelled):
            tracked(client)
        [run] = runs
        assert run.cancelled
        assert time.monotonic() - cancelled["at"] <= max(1.0, HEARTBEAT_S) + 0.2
        assert run.id is not None
        assert terminal_events(client, run.id) == ["cancelled"]


def test_a_run_that_ends_after_its_cancel_does_not_overwrite_it(server: Server) -> None:
    with JobPulse(server.url, server.admin_key) as client:
        with client.track(job_type="quick") as run:  # no heartbeats: it never hears
            assert run.id is not None
            client.cancel_job(run.id)
        assert client.get_job(run.id).status == "cancelled"
        assert terminal_events(client, run.id) == ["cancelled"]
        with pytest.raises(JobCancelled):
            run.heartbeat()
        with pytest.raises(JobCancelled):
            run.first_token()
