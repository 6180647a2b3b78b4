"""arq with the integration installed: a real Redis, a real arq worker process and a real
`jobpulse serve`; what a user sees of each job through the API.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job, JobStatus

from jobpulse.client import JobPulse
from jobpulse.integrations.arq import instrument
from tests.integrations import arq_app
from tests.integrations.executors import (
    JobpulseProcess,
    WorkerProcess,
    assert_went,
    ended,
    lost,
    once_running,
)

KEY = "arq_task_id"


@pytest.fixture(scope="module")
def worker(
    server: JobpulseProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("arq") / "worker.log"
    process = WorkerProcess("tests.integrations.arq_app", server, log)
    yield process
    process.stop()


@pytest.fixture
async def pool(server: JobpulseProcess, worker: WorkerProcess) -> AsyncIterator[ArqRedis]:
    """A pool on the tests' queue with the integration installed: the publisher's side."""
    redis = await create_pool(arq_app.REDIS, default_queue_name=arq_app.QUEUE)
    reporter = instrument(redis, url=server.url, api_key=server.admin_key)
    yield redis
    reporter.close()
    await redis.aclose()
    if worker.process.poll() is not None:
        pytest.fail(f"the worker died:\n{worker.output()}")


async def arq_status(pool: ArqRedis, job_id: str) -> JobStatus:
    return await Job(job_id, pool, _queue_name=arq_app.QUEUE).status()


async def test_a_finished_job_is_a_completed_job_with_its_history(
    pool: ArqRedis, api: JobPulse
) -> None:
    job = await pool.enqueue_job("add", 2, 3)
    assert job is not None

    seen = ended(api, KEY, job.job_id)
    assert seen.status == "completed"
    assert seen.job_type == "add"
    assert seen.metadata["queue"] == arq_app.QUEUE
    assert seen.metadata["attempts"] == 1
    assert seen.total_duration_ns is not None
    assert seen.total_duration_ns > 0
    assert_went(api, seen.id, "pending", "running", "completed")
    assert await job.result(timeout=5) == 5


async def test_a_failing_function_is_a_failed_job_with_its_error(
    pool: ArqRedis, api: JobPulse
) -> None:
    job = await pool.enqueue_job("boom", "no luck today")
    assert job is not None

    seen = ended(api, KEY, job.job_id)
    assert seen.status == "failed"
    assert seen.stop_reason == "error"
    assert seen.metadata["error_type"] == "ValueError"
    assert seen.metadata["error_message"] == "no luck today"
    assert_went(api, seen.id, "pending", "running", "failed")


async def test_a_retried_job_counts_its_tries_and_notes_each_retry(
    pool: ArqRedis, api: JobPulse
) -> None:
    job = await pool.enqueue_job("flaky", f"flaky-{uuid.uuid4()}", 2)
    assert job is not None

    seen = ended(api, KEY, job.job_id)
    assert seen.status == "completed"
    assert seen.metadata["attempts"] == 3
    notes = [e.reason for e in api.list_events(seen.id) if e.reason and "retry" in e.reason]
    assert notes == ["attempt 1 asked for a retry", "attempt 2 asked for a retry"]
    assert_went(api, seen.id, "pending", "running", "completed")


async def test_a_job_out_of_tries_is_failed_after_its_last_one(
    pool: ArqRedis, api: JobPulse
) -> None:
    job = await pool.enqueue_job("flaky", f"flaky-{uuid.uuid4()}", 9)
    assert job is not None

    seen = ended(api, KEY, job.job_id)
    assert seen.status == "failed"
    assert seen.metadata["attempts"] == 3
    assert seen.metadata["error_type"] == "Retry"
    # arq failed it too (max tries exceeded): it stores the result just after the hook that
    # reported the failure, so it may land a moment after jobpulse has it
    info = await job.result_info()
    for _ in range(100):
        if info is not None:
            break
        await asyncio.sleep(0.1)
        info = await job.result_info()
    assert info is not None
    assert info.success is False


async def test_a_job_past_its_timeout_is_a_failed_job(pool: ArqRedis, api: JobPulse) -> None:
    job = await pool.enqueue_job("slow", 30, f"slow-{uuid.uuid4()}")
    assert job is not None

    seen = ended(api, KEY, job.job_id)
    assert seen.status == "failed"
    assert seen.metadata["error_type"] == "TimeoutError"
    assert_went(api, seen.id, "pending", "running", "failed")


async def test_cancelling_the_job_in_jobpulse_aborts_it_in_arq(
    pool: ArqRedis, api: JobPulse
) -> None:
    finished = f"sleepy-{uuid.uuid4()}"
    job = await pool.enqueue_job("sleepy", 30, finished)
    assert job is not None
    seen = once_running(api, KEY, job.job_id)
    api.cancel_job(seen.id)

    info = await job.result_info()
    for _ in range(100):
        if (info := await job.result_info()) is not None:
            break
        await asyncio.sleep(0.1)
    assert info is not None, "arq did not end it"
    assert isinstance(info.result, asyncio.CancelledError)  # aborted, as arq records it
    assert await pool.get(finished) is None
    assert api.get_job(seen.id).status == "cancelled"
    assert_went(api, seen.id, "pending", "running", "cancelled")


async def test_a_job_aborted_in_arq_is_a_cancelled_job(pool: ArqRedis, api: JobPulse) -> None:
    job = await pool.enqueue_job("sleepy", 30, f"sleepy-{uuid.uuid4()}")
    assert job is not None
    once_running(api, KEY, job.job_id)

    assert await job.abort(timeout=10)

    seen = ended(api, KEY, job.job_id)
    assert seen.status == "cancelled"
    assert seen.stop_reason == "cancelled"


async def test_a_worker_alone_instrumented_still_shows_every_job(
    worker: WorkerProcess, api: JobPulse
) -> None:
    plain = await create_pool(arq_app.REDIS, default_queue_name=arq_app.QUEUE)
    try:
        job = await plain.enqueue_job("add", 20, 22)  # the publisher knows nothing of jobpulse
        assert job is not None

        seen = ended(api, KEY, job.job_id)
        assert seen.status == "completed"
        assert_went(api, seen.id, "running", "completed")
    finally:
        await plain.aclose()


async def test_jobs_run_while_jobpulse_is_down_and_catch_up(
    server: JobpulseProcess, pool: ArqRedis, api: JobPulse
) -> None:
    server.stop()
    try:
        jobs = [await pool.enqueue_job("add", n, n) for n in range(5)]
        for job in jobs:  # the jobs are not held up by jobpulse being away
            assert job is not None
            assert await job.result(timeout=15) == 2 * jobs.index(job)
    finally:
        server.start()

    for job in jobs:
        assert job is not None
        seen = ended(api, KEY, job.job_id)
        assert seen.status == "completed"
        assert_went(api, seen.id, "pending", "running", "completed")


async def test_a_worker_killed_mid_job_leaves_its_job_to_the_sweeper(
    worker: WorkerProcess, api: JobPulse
) -> None:
    """Last: it kills the module's worker."""
    plain = await create_pool(arq_app.REDIS, default_queue_name=arq_app.QUEUE)
    try:
        job = await plain.enqueue_job("sleepy", 60, f"sleepy-{uuid.uuid4()}")
        assert job is not None
        seen = once_running(api, KEY, job.job_id)
        assert seen.heartbeat_timeout_s == 1.5  # 3 x the worker's heartbeat_s

        worker.kill()

        lost(api, seen.id)
    finally:
        await plain.aclose()
