"""The SDK's async tracker (`AsyncJobPulse.track`, `track_stream`) against the real app on
loopback: how each end of a run shows on its job, cancellation through the API stopping the
task, and the tracked code going on when jobpulse answers an error or cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from jobpulse.client import AsyncJobPulse, JobCancelled
from jobpulse.public import JobPublic
from tests.served import ENDED, NOWHERE, Faults, Served

pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
async def client(served: Served, secret: str, faults: Faults) -> AsyncIterator[AsyncJobPulse]:
    """The client of the tracked code, whose requests `faults` may fail."""
    async with AsyncJobPulse(served.url, secret, transport=faults) as tracking:
        yield tracking


@pytest.fixture
async def reader(served: Served, secret: str) -> AsyncIterator[AsyncJobPulse]:
    """A client that sees the jobs as the user does."""
    async with AsyncJobPulse(served.url, secret) as reading:
        yield reading


async def the_job(reader: AsyncJobPulse, job_type: str) -> JobPublic:
    [job] = await reader.list_jobs(job_type=job_type)
    return job


async def ends(reader: AsyncJobPulse, job_id: str) -> list[tuple[str, str | None]]:
    """The job's applied terminal events: (status, stop reason)."""
    return [
        (event.to_status, event.stop_reason)
        for event in await reader.list_events(job_id)
        if event.applied and event.to_status in ENDED
    ]


async def test_a_block_that_ends_completes_its_job(
    client: AsyncJobPulse, reader: AsyncJobPulse
) -> None:
    async with client.track(job_type="agent", metadata={"source_id": "a-7"}) as run:
        await asyncio.sleep(0.05)
        await run.first_token()
        await asyncio.sleep(0.05)
    assert run.id is not None
    job = await reader.get_job(run.id)
    assert (job.status, job.metadata) == ("completed", {"source_id": "a-7"})
    assert job.ttft_ns is not None
    assert job.total_duration_ns is not None
    assert 50_000_000 <= job.ttft_ns < job.total_duration_ns
    assert await ends(reader, job.id) == [("completed", None)]


async def test_a_decorated_coroutine_returns_its_result_or_fails_its_job(
    client: AsyncJobPulse, reader: AsyncJobPulse
) -> None:
    @client.track(job_type="answer")
    async def answer(question: str) -> str:
        if not question:
            raise LookupError("nothing asked")
        return question.upper()

    assert await answer("why") == "WHY"
    with pytest.raises(LookupError, match="nothing asked"):
        await answer("")
    jobs = {job.status: job for job in await reader.list_jobs(job_type="answer")}
    assert set(jobs) == {"completed", "failed"}
    assert jobs["failed"].stop_reason == "error"
    assert jobs["failed"].metadata["error_type"] == "LookupError"


async def test_a_cancelled_task_cancels_its_job(
    client: AsyncJobPulse, reader: AsyncJobPulse
) -> None:
    started = asyncio.Event()

    @client.track(job_type="abandoned")
    async def long_run() -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(long_run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    job = await the_job(reader, "abandoned")
    assert (job.status, job.stop_reason) == ("cancelled", "cancelled")


async def test_a_cancel_through_the_api_stops_the_block_at_its_next_heartbeat(
    client: AsyncJobPulse, reader: AsyncJobPulse
) -> None:
    runs = []

    async def tracked() -> None:
        async with client.track(job_type="long", heartbeat_s=0.05) as run:
            runs.append(run)
            assert run.id is not None
            await reader.cancel_job(run.id)
            await asyncio.sleep(10)

    began = time.monotonic()
    with pytest.raises(JobCancelled):
        await tracked()
    assert time.monotonic() - began < 2.0  # within a heartbeat or so, not the 10 s asked
    [run] = runs
    assert run.cancelled
    assert run.id is not None
    assert await ends(reader, run.id) == [("cancelled", "cancelled")]


async def test_cancel_stream_stops_the_block_at_once(
    client: AsyncJobPulse, reader: AsyncJobPulse
) -> None:
    cancels: list[asyncio.Task[float]] = []
    job_ids: list[str] = []

    async def cancel_soon(job_id: str) -> float:
        await asyncio.sleep(0.3)  # the stream is open by then
        await reader.cancel_job(job_id)
        return time.monotonic()

    async def tracked() -> None:
        async with client.track(job_type="watched", cancel_stream=True) as run:
            assert run.id is not None
            job_ids.append(run.id)
            cancels.append(asyncio.create_task(cancel_soon(run.id)))
            await asyncio.sleep(10)  # no heartbeat: the stream alone can stop it

    with pytest.raises(JobCancelled):
        await tracked()
    stopped = time.monotonic()
    assert stopped - await cancels[0] < 1.0
    assert await ends(reader, job_ids[0]) == [("cancelled", "cancelled")]


async def test_a_stream_records_its_first_item_as_the_first_token(
    client: AsyncJobPulse, reader: AsyncJobPulse
) -> None:
    async def chunks() -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        yield "Hel"
        await asyncio.sleep(0.05)
        yield "lo"

    assert [chunk async for chunk in client.track_stream(chunks(), job_type="s")] == ["Hel", "lo"]
    job = await the_job(reader, "s")
    assert job.status == "completed"
    assert job.ttft_ns is not None
    assert job.total_duration_ns is not None
    assert 50_000_000 <= job.ttft_ns < job.total_duration_ns


async def test_failed_reports_are_logged_and_the_run_goes_on(
    client: AsyncJobPulse,
    reader: AsyncJobPulse,
    faults: Faults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults.unavailable |= {("POST", "/heartbeat"), ("POST", "/first-token")}
    with caplog.at_level(logging.WARNING, "jobpulse.tracking"):
        async with client.track(job_type="deaf", heartbeat_s=0.02) as run:
            await run.first_token()
            await run.heartbeat(step=1)
            await asyncio.sleep(0.1)
            faults.unavailable.add(("PATCH", "/v1/jobs/"))
    assert run.id is not None
    assert f"a report on {run.id} failed" in caplog.text
    assert f"heartbeat for {run.id} failed" in caplog.text
    job = await reader.get_job(run.id)
    assert (job.status, job.ttft_ns, job.heartbeat_at) == ("running", None, None)
    faults.down = True
    error = RuntimeError("mine")
    with pytest.raises(RuntimeError) as raised:
        async with client.track(job_type="deaf"):
            raise error
    assert raised.value is error


async def test_a_run_goes_on_untracked_when_jobpulse_cannot_be_reached(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncJobPulse(NOWHERE, secret) as nowhere:

        @nowhere.track(job_type="offline", heartbeat_s=0.02, cancel_stream=True)
        async def work(value: int) -> int:
            await asyncio.sleep(0.05)
            return value * 2

        with caplog.at_level(logging.WARNING, "jobpulse.tracking"):
            assert await work(21) == 42
            async with nowhere.track(job_type="offline") as run:
                await run.first_token()
                await run.update(metadata={"a": 1})
            assert (run.job, run.cancelled) == (None, False)
            streamed = nowhere.track_stream(_items("ab"), job_type="offline")
            assert [item async for item in streamed] == ["a", "b"]
    assert "untracked" in caplog.text


async def _items(values: str) -> AsyncIterator[str]:
    for value in values:
        yield value
