"""RQ with the integration installed: a real Redis, a real forking `rq.Worker` process and a
real `jobpulse serve`; what a user sees of each task through the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import partial

import pytest
from redis import Redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus

from jobpulse.client import JobPulse
from jobpulse.integrations.rq import instrument
from tests.integrations import rq_app
from tests.integrations.executors import (
    JobpulseProcess,
    WorkerProcess,
    assert_went,
    ended,
    job_with,
    lost,
    once_running,
    wait_for,
)


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    connection = rq_app.connection()
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def worker(
    server: JobpulseProcess, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("rq") / "worker.log"
    process = WorkerProcess("tests.integrations.rq_app", server, log)
    yield process
    process.stop()


@pytest.fixture
def queue(server: JobpulseProcess, redis: Redis, worker: WorkerProcess) -> Iterator[Queue]:
    """The tests' queue with the integration installed: the publisher's side."""
    published = Queue(rq_app.QUEUE, connection=redis)
    reporter = instrument(published, url=server.url, api_key=server.admin_key)
    yield published
    reporter.close()
    if worker.process.poll() is not None:
        pytest.fail(f"the worker died:\n{worker.output()}")


def rq_status(job: Job) -> JobStatus:
    return job.get_status(refresh=True)


def is_finished(job: Job) -> bool:
    return rq_status(job) == JobStatus.FINISHED


def test_a_finished_task_is_a_completed_job_with_its_history(queue: Queue, api: JobPulse) -> None:
    job = queue.enqueue(rq_app.add, 2, 3)

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "completed"
    assert seen.job_type == "tests.integrations.rq_app.add"
    assert seen.metadata["queue"] == rq_app.QUEUE
    assert seen.metadata["attempts"] == 1
    assert_went(api, seen.id, "pending", "running", "completed")
    assert seen.started_at is not None
    assert seen.total_duration_ns is not None
    assert seen.total_duration_ns > 0
    assert job.return_value() == 5


def test_a_failing_task_is_a_failed_job_with_its_error(queue: Queue, api: JobPulse) -> None:
    job = queue.enqueue(rq_app.boom, "no luck today")

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "failed"
    assert seen.stop_reason == "error"
    assert seen.metadata["error_type"] == "ValueError"
    assert seen.metadata["error_message"] == "no luck today"
    assert_went(api, seen.id, "pending", "running", "failed")


def test_a_retried_task_counts_its_attempts_and_notes_each_retry(
    queue: Queue, api: JobPulse
) -> None:
    job = queue.enqueue(rq_app.flaky, f"flaky-{uuid.uuid4()}", 1, retry=Retry(max=2))

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "completed"
    assert seen.metadata["attempts"] == 2
    assert "error_type" not in seen.metadata
    notes = [event.reason for event in api.list_events(seen.id) if event.reason]
    assert any("attempt 1 failed (ConnectionError: attempt 1 failed)" in n for n in notes), notes
    assert_went(api, seen.id, "pending", "running", "completed")


def test_a_task_out_of_retries_is_failed_after_its_last_attempt(
    queue: Queue, api: JobPulse
) -> None:
    job = queue.enqueue(rq_app.flaky, f"flaky-{uuid.uuid4()}", 5, retry=Retry(max=1))

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "failed"
    assert seen.metadata["attempts"] == 2
    assert seen.metadata["error_type"] == "ConnectionError"
    assert seen.metadata["error_message"] == "attempt 2 failed"


def test_cancelling_the_job_in_jobpulse_stops_the_running_task(
    queue: Queue, api: JobPulse, redis: Redis
) -> None:
    finished = f"sleepy-{uuid.uuid4()}"
    job = queue.enqueue(rq_app.sleepy, 30, finished)
    seen = once_running(api, "rq_task_id", job.id)
    api.cancel_job(seen.id)

    wait_for(lambda: rq_status(job) == JobStatus.STOPPED, timeout=10, what="RQ to stop it")
    assert redis.get(finished) is None  # it never got to its end
    after = api.get_job(seen.id)
    assert after.status == "cancelled"
    assert_went(api, seen.id, "pending", "running", "cancelled")


def test_a_task_stopped_in_rq_is_a_cancelled_job(queue: Queue, api: JobPulse, redis: Redis) -> None:
    job = queue.enqueue(rq_app.sleepy, 30, f"sleepy-{uuid.uuid4()}")
    wait_for(lambda: Job.fetch(job.id, redis).worker_name, what="a work horse to run it")

    send_stop_job_command(redis, job.id)

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "cancelled"
    assert seen.stop_reason == "cancelled"


def test_a_scheduled_task_cancelled_in_rq_is_a_cancelled_job(queue: Queue, api: JobPulse) -> None:
    job = queue.enqueue_in(timedelta(minutes=10), rq_app.add, 1, 2)
    wait_for(lambda: job_with(api, "rq_task_id", job.id), what="its job")

    job.cancel()

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "cancelled"
    assert_went(api, seen.id, "pending", "cancelled")


def test_a_worker_alone_instrumented_still_shows_every_task(
    redis: Redis, worker: WorkerProcess, api: JobPulse
) -> None:
    plain = Queue(rq_app.QUEUE, connection=redis)  # the publisher knows nothing of jobpulse

    job = plain.enqueue(rq_app.add, 20, 22)

    seen = ended(api, "rq_task_id", job.id)
    assert seen.status == "completed"
    assert_went(api, seen.id, "running", "completed")


def test_tasks_finish_while_jobpulse_is_down_and_their_jobs_catch_up(
    server: JobpulseProcess, queue: Queue, api: JobPulse
) -> None:
    server.stop()
    try:
        jobs = [queue.enqueue(rq_app.add, n, n) for n in range(5)]
        for job in jobs:  # the tasks are not held up by jobpulse being away
            wait_for(partial(is_finished, job), what="RQ to run it")
    finally:
        server.start()

    for job in jobs:
        seen = ended(api, "rq_task_id", job.id)
        assert seen.status == "completed"
        assert_went(api, seen.id, "pending", "running", "completed")


def test_a_worker_killed_mid_task_leaves_its_job_to_the_sweeper(
    redis: Redis, worker: WorkerProcess, api: JobPulse
) -> None:
    """Last: it kills the module's worker."""
    job = Queue(rq_app.QUEUE, connection=redis).enqueue(rq_app.sleepy, 60, "never")
    seen = once_running(api, "rq_task_id", job.id)
    assert seen.heartbeat_timeout_s == 1.5  # 3 x the worker's heartbeat_s

    worker.kill()

    lost(api, seen.id)
