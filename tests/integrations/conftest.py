"""Real parts for the executor integrations: a `jobpulse serve` process on a fresh SQLite file
(its sweeper quick), brokers on this machine (Redis database 13 and RabbitMQ; skipped when
down, a failure under CI), and Celery worker processes of tests/integrations/celery_app.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobpulse.client import JobPulse
from tests.e2e.conftest import Server, close, free_port, start, stop
from tests.integrations.executors import JobpulseProcess

ROOT = Path(__file__).resolve().parents[2]
#: Redis database of these tests (other suites use other numbers).
REDIS_URL = "redis://127.0.0.1:6379/13"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: The server's sweeper runs this often (s), so that silence is noticed within the test.
SWEEP_S = "0.3"


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def need(port: int, name: str) -> None:
    """Skip without the broker on `port` (fail under CI, where it must run)."""
    if not _reachable(port):
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI and is unreachable on port {port}")
        pytest.skip(f"{name} unreachable on 127.0.0.1:{port}")


@pytest.fixture
def redis_broker() -> str:
    need(6379, "Redis")
    return REDIS_URL


@pytest.fixture
def rabbitmq_broker() -> str:
    need(5672, "RabbitMQ")
    need(6379, "Redis")  # the result backend
    return RABBITMQ_URL


@dataclass
class Jobpulse:
    """A `jobpulse serve` that can be stopped and brought back on the same port and file."""

    database_url: str
    port: int
    server: Server
    #: The admin key its first start printed.
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        stop(self.server)
        close(self.server)

    def restart(self) -> None:
        env = {"JOBPULSE_SWEEP_INTERVAL_S": SWEEP_S}
        self.server = start(self.database_url, port=self.port, env=env, expect_key=False)


@pytest.fixture
def jobpulse(tmp_path: Path, sqlite_template: Path) -> Iterator[Jobpulse]:
    shutil.copyfile(sqlite_template, tmp_path / "jobpulse.db")  # migrated already
    database_url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    port = free_port()
    server = start(database_url, port=port, env={"JOBPULSE_SWEEP_INTERVAL_S": SWEEP_S})
    served = Jobpulse(database_url, port, server, server.admin_key)
    yield served
    close(served.server)


@dataclass
class Worker:
    """A `celery worker` process of its own session (so that its children die with it)."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """Warm shutdown (SIGTERM): the running task ends, reports are flushed; killed
        after 10 s (a test that left a long task behind).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.wait()

    def kill(self) -> None:
        """SIGKILL the worker and its pool's processes at once."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


StartWorker = Callable[..., Worker]


@pytest.fixture
def queue_name() -> str:
    return f"jobpulse-tests-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def celery_worker(tmp_path: Path, queue_name: str) -> Iterator[StartWorker]:
    """Starts a worker on the test's queue: start(broker, jobpulse or None, pool=, **env)."""
    started: list[Worker] = []

    def start_worker(
        broker: str, jobpulse: Jobpulse | None, pool: str = "solo", **env: str
    ) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        variables = {
            "JP_CELERY_BROKER": broker,
            "JP_CELERY_BACKEND": REDIS_URL,
            "JP_CELERY_QUEUE": queue_name,
            **({"JP_CELERY_URL": jobpulse.url, "JP_CELERY_KEY": jobpulse.key} if jobpulse else {}),
            **{f"JP_CELERY_{name.upper()}": value for name, value in env.items()},
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "tests.integrations.celery_app"),
                    *("worker", "--pool", pool, "--concurrency", "1", "-Q", queue_name),
                    *("-n", f"{queue_name}-{len(started)}@%h", "-l", "info"),
                    *("--without-mingle", "--without-gossip", "--without-heartbeat"),
                ],
                cwd=ROOT,
                env=os.environ | variables,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(process, log)
        started.append(worker)
        deadline = time.monotonic() + 60
        while " ready." not in worker.output():
            assert process.poll() is None, f"the worker died:\n{worker.output()}"
            assert time.monotonic() < deadline, f"the worker is not ready:\n{worker.output()}"
            time.sleep(0.1)
        return worker

    yield start_worker
    for worker in started:
        worker.stop()


# RQ, Dramatiq and arq (test_rq.py, test_dramatiq.py, test_arq.py, test_examples.py): one
# jobpulse for a module's tests, whose workers run for the whole module.


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobpulseProcess]:
    """jobpulse served for the module's tests (an outage test stops and restarts it)."""
    database = tmp_path_factory.mktemp("jobpulse") / "jobpulse.db"
    # The sweeper looks often: a killed worker's jobs are flagged within seconds.
    served = JobpulseProcess(f"sqlite:///{database}", env={"JOBPULSE_SWEEP_INTERVAL_S": "0.5"})
    served.start()
    yield served
    served.stop()


@pytest.fixture
def api(server: JobpulseProcess) -> Iterator[JobPulse]:
    """The SDK with the admin key: what a user of the dashboard or the API sees."""
    with server.client() as client:
        yield client
