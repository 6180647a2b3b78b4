"""Celery with `instrument(app, ...)`: real workers (solo and prefork) on Redis and RabbitMQ,
a real `jobpulse serve`; what a user sees is every task as a job with the right status,
history and metadata, whatever happens to the worker or to jobpulse.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from celery import Celery

from jobpulse.client import JobPulse
from jobpulse.integrations.celery import Instrumentation, instrument
from jobpulse.public import JobPublic
from tests.integrations.celery_app import make_app
from tests.integrations.conftest import REDIS_URL, Jobpulse, StartWorker

T = TypeVar("T")

#: Celery's Redis result backend, in this process as the tests' client, drops connections
#: it reconnects past (redis-py's ConnectionPool.reset) without closing them; their sockets'
#: finalizers then warn in whichever test the garbage collector runs. `Publisher.close`
#: closes every connection the backend still holds; only an unclosed socket to Redis is let
#: pass, and only here.
_REDIS_SOCKET = r"Exception ignored in. <socket\.socket .*6379\)>"
pytestmark = pytest.mark.filterwarnings(
    f"ignore:{_REDIS_SOCKET}:pytest.PytestUnraisableExceptionWarning"
)


def eventually(read: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 30) -> T:
    """`read()` once `ok` holds of it (the last value in the failure otherwise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r}"
        time.sleep(0.1)


class Publisher:
    """The test process as a Celery client, instrumented or not."""

    def __init__(self, broker: str, queue: str, jobpulse: Jobpulse | None) -> None:
        self.app: Celery = make_app(broker, REDIS_URL, queue)
        self.installed: Instrumentation | None = None
        if jobpulse is not None:
            self.installed = instrument(self.app, url=jobpulse.url, api_key=jobpulse.key)

    def send(self, name: str, *args: Any, **options: Any) -> Any:
        return self.app.send_task(name, args=args, **options)

    def close(self) -> None:
        if self.installed is not None:
            self.installed.uninstrument()
        # The result backend's sockets to Redis (its pubsub and pool) are closed here, not
        # left to the garbage collector to warn of in whichever test runs then.
        backend = self.app.backend
        backend.result_consumer.stop()
        backend.client.connection_pool.disconnect()
        self.app.close()


@pytest.fixture
def publishers(queue_name: str) -> Iterator[Callable[[str, Jobpulse | None], Publisher]]:
    made: list[Publisher] = []

    def publisher(broker: str, jobpulse: Jobpulse | None) -> Publisher:
        made.append(Publisher(broker, queue_name, jobpulse))
        return made[-1]

    yield publisher
    for one in made:
        one.close()


@pytest.fixture
def client(jobpulse: Jobpulse) -> Iterator[JobPulse]:
    with JobPulse(jobpulse.url, jobpulse.key) as admin:
        yield admin


def job_of(client: JobPulse, task_id: str, *, status: str | None = None) -> JobPublic:
    """The one job of `task_id` (once it has `status`, if given)."""
    jobs = eventually(
        lambda: client.list_jobs(metadata={"celery_task_id": task_id}),
        lambda found: len(found) == 1 and status in (None, found[0].status),
    )
    return jobs[0]


def history(client: JobPulse, job: JobPublic) -> list[tuple[str | None, str, str | None]]:
    return [(e.from_status, e.to_status, e.reason) for e in client.list_events(job.id)]


def test_success_failure_and_retries_become_jobs(
    redis_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
    queue_name: str,
) -> None:
    publisher = publishers(redis_broker, jobpulse)
    celery_worker(redis_broker, jobpulse)
    added = publisher.send("tests.add", 2, 3)
    failed = publisher.send("tests.fail", "no such user")
    flaky = publisher.send("tests.flaky", 2)
    assert added.get(timeout=30) == 5
    assert flaky.get(timeout=30) == 2
    with pytest.raises(ValueError, match="no such user"):
        failed.get(timeout=30)

    job = job_of(client, added.id, status="completed")
    assert job.job_type == "tests.add"
    assert job.metadata["queue"] == queue_name
    assert job.metadata["attempts"] == 1
    assert job.total_duration_ns is not None
    assert [(a, b) for a, b, _ in history(client, job)] == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "completed"),
    ]

    job = job_of(client, failed.id, status="failed")
    assert job.stop_reason == "error"
    assert (job.metadata["error_type"], job.metadata["error_message"]) == (
        "ValueError",
        "no such user",
    )

    job = job_of(client, flaky.id, status="completed")
    assert job.metadata["attempts"] == 3
    assert job.metadata["last_error_type"] == "ConnectionError"
    notes = [reason for a, b, reason in history(client, job) if a == b == "running"]
    assert len(notes) == 2
    assert notes[0] is not None
    assert notes[0].startswith("retry after attempt 1: ")
    assert [b for a, b, _ in history(client, job) if a != b] == ["pending", "running", "completed"]


def test_a_worker_alone_reports_one_job_per_task_created_running(
    redis_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, None)
    celery_worker(redis_broker, jobpulse)
    results = [publisher.send("tests.add", n, n) for n in range(5)]
    assert [result.get(timeout=30) for result in results] == [0, 2, 4, 6, 8]
    for result in results:
        job = job_of(client, result.id, status="completed")
        assert [(a, b) for a, b, _ in history(client, job)] == [
            (None, "running"),
            ("running", "completed"),
        ]
    assert client.count_jobs(job_type="tests.add").total == 5


def test_revoked_tasks_are_cancelled_queued_or_running(
    redis_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, jobpulse)
    celery_worker(redis_broker, jobpulse, pool="prefork")
    busy = publisher.send("tests.sleep", 30)  # its one process is busy meanwhile
    waiting = publisher.send("tests.add", 1, 1)
    running = job_of(client, busy.id, status="running")
    publisher.app.control.revoke(waiting.id)  # dropped when its turn comes
    publisher.app.control.revoke(busy.id, terminate=True)
    job_of(client, busy.id, status="cancelled")
    queued = job_of(client, waiting.id, status="cancelled")
    assert (busy.state, waiting.state) == ("REVOKED", "REVOKED")
    assert queued.stop_reason == "cancelled"
    assert [b for _a, b, _r in history(client, queued)] == ["pending", "cancelled"]
    reasons = [r for _a, b, r in history(client, running) if b == "cancelled"]
    assert reasons == ["celery: terminated"]


def test_cancelling_the_job_stops_the_task_at_its_heartbeat(
    redis_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, jobpulse)
    celery_worker(redis_broker, jobpulse)
    long = publisher.send("tests.beating", 60)
    job = job_of(client, long.id, status="running")
    eventually(lambda: client.get_job(job.id).metadata.get("step", 0), lambda step: step > 2)
    client.cancel_job(job.id)
    cancelled_at = time.monotonic()
    eventually(lambda: long.state, lambda state: state == "FAILURE")
    assert time.monotonic() - cancelled_at < 10, "the task stopped within a few heartbeats"
    ended = client.get_job(job.id)
    assert (ended.status, ended.stop_reason) == ("cancelled", "cancelled")
    terminal = [b for a, b, _ in history(client, job) if a != b and b not in ("pending", "running")]
    assert terminal == ["cancelled"]


def test_cancelling_the_job_terminates_a_prefork_task(
    redis_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, jobpulse)
    celery_worker(redis_broker, jobpulse, pool="prefork", heartbeat_s="0.3")
    silent = publisher.send("tests.sleep", 60)  # never calls heartbeat() itself
    job = job_of(client, silent.id, status="running")
    client.cancel_job(job.id)
    eventually(lambda: silent.state, lambda state: state == "REVOKED")
    after = publisher.send("tests.add", 4, 4)  # the worker lives on
    assert after.get(timeout=30) == 8
    assert client.get_job(job.id).status == "cancelled"


def test_a_killed_workers_job_stays_running_and_is_flagged_stuck(
    redis_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, None)  # the worker's heartbeat timeout applies
    worker = celery_worker(redis_broker, jobpulse, heartbeat_s="0.3")
    silent = publisher.send("tests.sleep", 60)
    job = job_of(client, silent.id, status="running")
    assert job.heartbeat_timeout_s == pytest.approx(0.9)
    eventually(lambda: client.get_job(job.id).heartbeat_at, lambda at: at is not None)
    time.sleep(1.5)  # alive past the heartbeat timeout: the reporter's heartbeats kept it
    assert client.get_job(job.id).stuck_since is None
    worker.kill()
    stuck = eventually(lambda: client.get_job(job.id), lambda found: found.stuck_since is not None)
    assert stuck.status == "running"
    assert any(e.reason and "heartbeat" in e.reason for e in client.list_events(job.id))


def test_tasks_run_on_while_jobpulse_is_down_and_their_jobs_catch_up(
    redis_broker: str,
    jobpulse: Jobpulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, jobpulse)
    celery_worker(redis_broker, jobpulse)
    jobpulse.stop()
    results = [publisher.send("tests.add", n, 1) for n in range(20)]
    began = time.monotonic()
    assert [result.get(timeout=30) for result in results] == list(range(1, 21))
    assert time.monotonic() - began < 15, "reporting never held a task up"
    jobpulse.restart()
    with JobPulse(jobpulse.url, jobpulse.key) as client:
        for result in results:
            job_of(client, result.id, status="completed")
        assert client.count_jobs(job_type="tests.add").total == 20


def test_the_buffer_bound_holds_while_jobpulse_is_down(
    redis_broker: str,
    jobpulse: Jobpulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(redis_broker, None)
    worker = celery_worker(redis_broker, jobpulse, buffer="4")
    jobpulse.stop()
    results = [publisher.send("tests.add", n, 1) for n in range(15)]
    assert [result.get(timeout=30) for result in results] == list(range(1, 16))
    assert "the report buffer is full (4 reports); 1 dropped so far" in worker.output()
    jobpulse.restart()
    with JobPulse(jobpulse.url, jobpulse.key) as client:
        # 2 reports a task; the one being retried and the 4 buffered reach jobpulse.
        first = job_of(client, results[0].id, status="completed")
        assert first.metadata["celery_task_id"] == results[0].id
        eventually(lambda: client.count_jobs(job_type="tests.add").total, lambda n: n == 3)
        time.sleep(1)
        counts = client.count_jobs(job_type="tests.add")
        assert counts.total == 3
        assert counts.by_status.get("completed") == 2


def test_rabbitmq_broker(
    rabbitmq_broker: str,
    jobpulse: Jobpulse,
    client: JobPulse,
    celery_worker: StartWorker,
    publishers: Callable[[str, Jobpulse | None], Publisher],
) -> None:
    publisher = publishers(rabbitmq_broker, jobpulse)
    celery_worker(rabbitmq_broker, jobpulse)
    added = publisher.send("tests.add", 20, 22)
    failed = publisher.send("tests.fail", "over amqp")
    assert added.get(timeout=30) == 42
    with pytest.raises(ValueError, match="over amqp"):
        failed.get(timeout=30)
    assert job_of(client, added.id, status="completed").job_type == "tests.add"
    job = job_of(client, failed.id, status="failed")
    assert job.metadata["error_message"] == "over amqp"
