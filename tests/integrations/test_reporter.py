"""The shared reporter against the real app served on loopback: reports become jobs in order,
several a wake-up over one connection; the buffer's bound holds and drops are counted while
jobpulse is unreachable, which nothing waits on; a 4xx is logged and never raised.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from jobpulse.client import JobPulse
from jobpulse.config import Settings
from jobpulse.integrations.reporter import Reporter
from jobpulse.integrations.reports import Kind, Report, error_metadata
from jobpulse.integrations.sender import REQUEST_BYTES
from tests.served import Faults, Served


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[Served]:
    path = tmp_path / "jobpulse.db"
    shutil.copyfile(sqlite_template, path)
    server = Served(Settings(database_url=f"sqlite:///{path}"))
    yield server
    server.close()


@pytest.fixture
def key(served: Served) -> str:
    return served.key()


@pytest.fixture
def client(served: Served, key: str) -> Iterator[JobPulse]:
    with JobPulse(served.url, key) as jobpulse:
        yield jobpulse


@dataclass
class Counting(Faults):
    """Faults that also notes the local port of every answered request (its connection)."""

    ports: list[int] = field(default_factory=list)
    #: The size of the body of every answered request.
    sizes: list[int] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.sizes.append(len(request.content))
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.ports.append(stream.get_extra_info("client_addr")[1])
        return response


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def task() -> str:
    return f"task-{uuid.uuid4()}"


def test_a_tasks_events_become_its_job_in_order(served: Served, key: str, client: JobPulse) -> None:
    reporter = Reporter(served.url, key, executor="demo")
    tid = task()
    reporter.report(Report(Kind.PUBLISHED, tid, "send_mail", metadata={"queue": "q1"}))
    reporter.report(Report(Kind.STARTED, tid, "send_mail", metadata={"attempts": 1}))
    reporter.report(
        Report(Kind.RETRIED, tid, "send_mail", metadata={"attempts": 2}, reason="retry: boom")
    )
    reporter.report(Report(Kind.FAILED, tid, "send_mail", metadata=error_metadata(KeyError("x"))))
    assert reporter.close(timeout_s=10)
    [job] = client.list_jobs(metadata={"demo_task_id": tid})
    assert (job.job_type, job.status, job.stop_reason) == ("send_mail", "failed", "error")
    assert job.metadata == {
        "demo_task_id": tid,
        "queue": "q1",
        "attempts": 2,
        "error_type": "KeyError",
        "error_message": "'x'",
    }
    history = [(e.from_status, e.to_status, e.reason) for e in client.list_events(job.id)]
    assert history == [
        (None, "pending", "created"),
        ("pending", "running", None),
        ("running", "running", "retry: boom"),
        ("running", "failed", None),
    ]
    assert (reporter.stats.sent, reporter.stats.dropped, reporter.stats.rejected) == (4, 0, 0)


def test_a_worker_alone_creates_the_job_running(served: Served, key: str, client: JobPulse) -> None:
    reporter = Reporter(served.url, key, executor="demo", heartbeat_s=5.0)
    tid = task()
    reporter.report(Report(Kind.STARTED, tid, "resize", job_type="images"))
    reporter.report(Report(Kind.SUCCEEDED, tid, "resize", job_type="images"))
    assert reporter.close(timeout_s=10)
    [job] = client.list_jobs(metadata={"demo_task_id": tid})
    assert (job.job_type, job.status, job.heartbeat_timeout_s) == ("images", "completed", 15.0)
    assert [e.to_status for e in client.list_events(job.id)] == ["running", "completed"]


def test_reports_go_many_a_request_over_one_connection(
    served: Served, key: str, client: JobPulse
) -> None:
    transport = Counting(down=True)
    reporter = Reporter(served.url, key, executor="demo", transport=transport, max_backoff_s=0.2)
    reporter.report(Report(Kind.STARTED, task(), "first"))
    wait_for(lambda: reporter.stats.retries > 0)  # the thread holds the first one
    tasks = [task() for _ in range(40)]
    for tid in tasks:
        reporter.report(Report(Kind.PUBLISHED, tid, "many"))
        reporter.report(Report(Kind.STARTED, tid, "many", metadata={"attempts": 1}))
        reporter.report(Report(Kind.SUCCEEDED, tid, "many"))
    transport.down = False
    assert reporter.flush(timeout_s=20)
    assert reporter.stats.sent == 121
    assert reporter.stats.wakeups == 2, "the 120 waiting reports went in one wake-up"
    assert len(transport.ports) == 2, "and in one request"
    assert len(set(transport.ports)) == 1, "one reused connection"
    reporter.close()
    done = client.list_jobs(job_type="many", limit=100)
    assert sorted(job.metadata["demo_task_id"] for job in done) == sorted(tasks)
    assert {(job.status, job.metadata["attempts"]) for job in done} == {("completed", 1)}
    history = [e.to_status for e in client.list_events(done[0].id)]
    assert history == ["pending", "running", "completed"]


def test_a_batch_larger_than_a_request_goes_in_several(
    served: Served, key: str, client: JobPulse
) -> None:
    transport = Counting(down=True)
    reporter = Reporter(
        served.url, key, executor="demo", transport=transport, max_backoff_s=0.2, batch=1200
    )
    reporter.report(Report(Kind.PUBLISHED, task(), "first"))
    wait_for(lambda: reporter.stats.retries > 0)
    blob = "x" * 1000  # the job's metadata and the update's: 2 KiB a report
    for _ in range(1100):
        reporter.report(Report(Kind.STARTED, task(), "sizable", metadata={"blob": blob}))
    transport.down = False
    assert reporter.flush(timeout_s=30)
    assert (reporter.stats.sent, reporter.stats.rejected) == (1101, 0)
    assert reporter.stats.wakeups == 2
    sizes = transport.sizes[1:]
    assert max(sizes) <= REQUEST_BYTES + 16, "within the bytes of a request"
    fewest = math.ceil(sum(sizes) / REQUEST_BYTES)
    assert fewest >= 4
    assert len(sizes) in (fewest, fewest + 1), "and as few requests as fit"
    assert client.count_jobs(job_type="sizable").total == 1100
    reporter.close()


def test_the_buffer_bound_holds_drops_are_counted_and_nothing_waits(
    served: Served, key: str, client: JobPulse, caplog: pytest.LogCaptureFixture
) -> None:
    transport = Faults(down=True)
    reporter = Reporter(
        served.url, key, executor="demo", buffer=5, transport=transport, max_backoff_s=0.2
    )
    head = task()
    reporter.report(Report(Kind.PUBLISHED, head, "bounded"))
    wait_for(lambda: reporter.stats.retries > 0)
    began = time.monotonic()
    taken = [reporter.report(Report(Kind.PUBLISHED, task(), "bounded")) for _ in range(20)]
    assert time.monotonic() - began < 0.5, "reporting never waits on jobpulse"
    assert taken == [True] * 5 + [False] * 15
    assert reporter.stats.dropped == 15
    assert "full (5 reports); 1 dropped so far" in caplog.text
    assert "15 dropped" not in caplog.text  # warned once (at most every 10 s), at the first
    transport.down = False
    assert reporter.close(timeout_s=20)
    assert client.count_jobs(job_type="bounded").total == 6
    assert reporter.stats.sent == 6


def test_a_4xx_is_logged_and_never_raised(
    served: Served, key: str, client: JobPulse, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = Reporter(served.url, "jp_not_a_key", executor="demo")
    assert wrong.report(Report(Kind.PUBLISHED, task(), "refused"))
    assert wrong.close(timeout_s=10)
    assert (wrong.stats.sent, wrong.stats.rejected) == (0, 1)
    assert "jobpulse refused a report" in caplog.text
    reporter = Reporter(served.url, key, executor="demo")
    huge = {"blob": "x" * 70_000}  # over the 64 KiB metadata limit: 422
    tid, fine = task(), task()
    reporter.report(Report(Kind.STARTED, tid, "big", metadata=huge))
    reporter.report(Report(Kind.STARTED, fine, "big"))
    assert reporter.close(timeout_s=10)
    assert (reporter.stats.sent, reporter.stats.rejected) == (1, 1)
    assert [job.metadata["demo_task_id"] for job in client.list_jobs(job_type="big")] == [fine]


def test_a_cancelled_job_is_learned_at_the_next_heartbeat(
    served: Served, key: str, client: JobPulse
) -> None:
    stopped: list[str] = []
    reporter = Reporter(served.url, key, executor="demo", on_cancelled=stopped.append)
    tid = task()
    reporter.report(Report(Kind.STARTED, tid, "long"))
    assert reporter.flush(timeout_s=10)
    [job] = client.list_jobs(metadata={"demo_task_id": tid})
    client.cancel_job(job.id)
    assert not reporter.is_cancelled(tid)
    reporter.report(Report(Kind.HEARTBEAT, tid, "long", metadata={"step": 3}))
    assert reporter.flush(timeout_s=10)
    assert reporter.is_cancelled(tid)
    assert stopped == [tid]
    reporter.report(Report(Kind.SUCCEEDED, tid, "long"))  # too late: the job stays cancelled
    assert reporter.close(timeout_s=10)
    assert client.get_job(job.id).status == "cancelled"


def test_running_tasks_get_heartbeats_from_the_thread(
    served: Served, key: str, client: JobPulse
) -> None:
    reporter = Reporter(served.url, key, executor="demo", heartbeat_s=0.2)
    tid = task()
    reporter.report(Report(Kind.STARTED, tid, "beating"))
    assert reporter.flush(timeout_s=10)
    [job] = client.list_jobs(metadata={"demo_task_id": tid})
    first = client.get_job(job.id).heartbeat_at
    wait_for(lambda: client.get_job(job.id).heartbeat_at not in (None, first), timeout_s=5)
    reporter.report(Report(Kind.SUCCEEDED, tid, "beating"))
    assert reporter.close(timeout_s=10)
    assert client.get_job(job.id).status == "completed"


def test_the_integrations_load_nothing_of_the_server() -> None:
    code = (
        "import sys, jobpulse.integrations.celery, jobpulse.integrations.reporter; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.replace("'", '"')))
    assert "celery" in loaded
    server = {"fastapi", "starlette", "sqlalchemy", "alembic", "asyncpg", "aiohttp", "uvicorn"}
    assert loaded & server == set()
