"""Dramatiq with the integration installed: real Redis (and RabbitMQ once), a real
`dramatiq` worker process and a real `jobpulse serve`; what a user sees through the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import dramatiq
import pytest
from redis import Redis

from jobpulse.client import JobPulse
from jobpulse.integrations.dramatiq import instrument
from tests.integrations import dramatiq_app
from tests.integrations.dramatiq_app import QUEUE, add, boom, flaky, sleepy
from tests.integrations.executors import (
    JobpulseProcess,
    WorkerProcess,
    assert_went,
    ended,
    lost,
    once_running,
    wait_for,
)

KEY = "dramatiq_task_id"


def start_worker(server: JobpulseProcess, log: Path, broker: str) -> WorkerProcess:
    """`dramatiq` on the tests' module: one process, one thread (a stuck actor shows)."""
    args = ("tests.integrations.dramatiq_app", "--processes", "1", "--threads", "1")
    return WorkerProcess(
        "dramatiq", server, log, *args, "--queues", QUEUE, env={"DRAMATIQ_BROKER": broker}
    )


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    connection = dramatiq_app.connection()
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def broker(server: JobpulseProcess, redis: Redis) -> Iterator[dramatiq.Broker]:
    """The actors' broker in this process, instrumented: the publisher's side."""
    publisher = dramatiq_app.broker
    reporter = instrument(publisher, url=server.url, api_key=server.admin_key)
    yield publisher
    reporter.close()


@pytest.fixture(scope="module")
def worker(
    server: JobpulseProcess, broker: dramatiq.Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = start_worker(server, tmp_path_factory.mktemp("dramatiq") / "worker.log", "redis")
    yield process
    process.stop()


@pytest.fixture
def running(worker: WorkerProcess) -> Iterator[WorkerProcess]:
    yield worker
    if worker.process.poll() is not None:
        pytest.fail(f"the worker died:\n{worker.output()}")


def test_a_message_processed_is_a_completed_job_with_its_history(
    running: WorkerProcess, api: JobPulse, redis: Redis
) -> None:
    key = f"sum-{uuid.uuid4()}"
    message = add.send(2, 3, key)

    seen = ended(api, KEY, message.message_id)
    assert seen.status == "completed"
    assert seen.job_type == "add"
    assert seen.metadata["queue"] == QUEUE
    assert seen.metadata["attempts"] == 1
    assert seen.total_duration_ns is not None
    assert seen.total_duration_ns > 0
    assert_went(api, seen.id, "pending", "running", "completed")
    assert redis.get(key) == b"5"


def test_a_failing_actor_is_a_failed_job_with_its_error(
    running: WorkerProcess, api: JobPulse
) -> None:
    message = boom.send("no luck today")

    seen = ended(api, KEY, message.message_id)
    assert seen.status == "failed"
    assert seen.stop_reason == "error"
    assert seen.metadata["error_type"] == "ValueError"
    assert seen.metadata["error_message"] == "no luck today"
    assert_went(api, seen.id, "pending", "running", "failed")


def test_a_retried_message_counts_its_attempts_and_notes_each_retry(
    running: WorkerProcess, api: JobPulse
) -> None:
    message = flaky.send(f"flaky-{uuid.uuid4()}", 2)

    seen = ended(api, KEY, message.message_id)
    assert seen.status == "completed"
    assert seen.metadata["attempts"] == 3
    notes = [event.reason or "" for event in api.list_events(seen.id) if event.reason]
    assert [n for n in notes if "failed (ConnectionError" in n] == [
        "attempt 1 failed (ConnectionError: attempt 1 failed); retrying",
        "attempt 2 failed (ConnectionError: attempt 2 failed); retrying",
    ]
    assert_went(api, seen.id, "pending", "running", "completed")


def test_a_message_out_of_retries_is_failed_after_its_last_attempt(
    running: WorkerProcess, api: JobPulse
) -> None:
    message = flaky.send_with_options(args=(f"flaky-{uuid.uuid4()}", 9), max_retries=1)

    seen = ended(api, KEY, message.message_id)
    assert seen.status == "failed"
    assert seen.metadata["attempts"] == 2
    assert seen.metadata["error_type"] == "ConnectionError"
    assert seen.metadata["error_message"] == "attempt 2 failed"


def test_cancelling_the_job_in_jobpulse_interrupts_the_actor_for_good(
    running: WorkerProcess, api: JobPulse, redis: Redis
) -> None:
    finished = f"sleepy-{uuid.uuid4()}"
    message = sleepy.send(30, finished)
    seen = once_running(api, KEY, message.message_id)
    api.cancel_job(seen.id)

    # The worker's only thread is free again at once: the next message runs.
    after = add.send(1, 1, f"sum-{uuid.uuid4()}")
    assert ended(api, KEY, after.message_id, timeout=10).status == "completed"
    assert redis.get(finished) is None
    assert api.get_job(seen.id).status == "cancelled"
    assert_went(api, seen.id, "pending", "running", "cancelled")
    assert "interrupted" in running.output()
    assert not any(
        event.reason and "retrying" in event.reason for event in api.list_events(seen.id)
    )


def test_a_worker_alone_instrumented_still_shows_every_message(
    running: WorkerProcess, api: JobPulse
) -> None:
    plain = dramatiq_app.make_broker("redis")  # a publisher that knows nothing of jobpulse
    plain.declare_queue(QUEUE)
    message = plain.enqueue(add.message(20, 22, f"sum-{uuid.uuid4()}"))

    seen = ended(api, KEY, message.message_id)
    assert seen.status == "completed"
    assert_went(api, seen.id, "running", "completed")
    plain.close()


def test_messages_run_while_jobpulse_is_down_and_their_jobs_catch_up(
    server: JobpulseProcess, running: WorkerProcess, api: JobPulse, redis: Redis
) -> None:
    keys = [f"sum-{uuid.uuid4()}" for _ in range(5)]
    server.stop()
    try:
        messages = [add.send(n, n, key) for n, key in enumerate(keys)]
        for key in keys:  # the actors are not held up by jobpulse being away
            wait_for(partial(redis.exists, key), what="the actor to run")
    finally:
        server.start()

    for message in messages:
        seen = ended(api, KEY, message.message_id)
        assert seen.status == "completed"
        assert_went(api, seen.id, "pending", "running", "completed")


def test_a_worker_killed_mid_message_leaves_its_job_to_the_sweeper(
    worker: WorkerProcess, api: JobPulse
) -> None:
    """After the others that use the module's worker: it kills it."""
    plain = dramatiq_app.make_broker("redis")  # the job is made by the worker, as it sees fit
    plain.declare_queue(QUEUE)
    message = plain.enqueue(sleepy.message(60, f"sleepy-{uuid.uuid4()}"))
    plain.close()
    seen = once_running(api, KEY, message.message_id)
    assert seen.heartbeat_timeout_s == 1.5  # 3 x the worker's heartbeat_s

    worker.kill()

    lost(api, seen.id)


def test_on_rabbitmq_too(
    server: JobpulseProcess, api: JobPulse, redis: Redis, tmp_path: Path
) -> None:
    rabbit = dramatiq_app.make_broker("rabbitmq")
    rabbit.declare_queue(QUEUE)
    rabbit.flush(QUEUE)
    reporter = instrument(rabbit, url=server.url, api_key=server.admin_key)
    worker = start_worker(server, tmp_path / "worker.log", "rabbitmq")
    try:
        key = f"sum-{uuid.uuid4()}"
        done = rabbit.enqueue(add.message(4, 5, key))
        failed = rabbit.enqueue(boom.message("rabbit says no"))

        seen = ended(api, KEY, done.message_id)
        assert seen.status == "completed"
        assert_went(api, seen.id, "pending", "running", "completed")
        assert redis.get(key) == b"9"
        lost = ended(api, KEY, failed.message_id)
        assert lost.status == "failed"
        assert lost.metadata["error_message"] == "rabbit says no"
    finally:
        worker.stop()
        reporter.close()
        rabbit.close()
