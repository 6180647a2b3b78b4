"""What the executor tests share: a real `jobpulse serve` that can go down and come back on
the same address (a jobpulse outage), real worker processes, and waiting for what a user sees
through the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from jobpulse.client import JobPulse
from jobpulse.public import JobPublic
from tests.e2e.conftest import Server, close, free_port, start, stop

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
#: The statuses a job ends in.
ENDED = frozenset({"completed", "failed", "cancelled", "expired"})


@dataclass
class JobpulseProcess:
    """A `jobpulse serve` process on a SQLite file, on a port that stays its own."""

    database_url: str
    port: int = field(default_factory=free_port)
    server: Server | None = None
    admin_key: str = ""
    #: The server's environment (its settings).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = start(
            self.database_url, expect_key=not self.admin_key, port=self.port, env=self.env
        )
        self.admin_key = self.admin_key or self.server.admin_key

    def stop(self) -> None:
        if self.server is not None:
            stop(self.server)
            close(self.server)
            self.server = None

    def client(self) -> JobPulse:
        return JobPulse(self.url, self.admin_key)


class WorkerProcess:
    """`python -m <module> <args>` in `cwd` (the repository), told where jobpulse is; its
    output goes to a file that a failing test prints.
    """

    def __init__(
        self,
        module: str,
        jobpulse: JobpulseProcess,
        log: Path,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.log = log
        env = (
            os.environ
            | (env or {})
            | {
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), str(cwd)]),
                "JOBPULSE_URL": jobpulse.url,
                "JOBPULSE_API_KEY": jobpulse.admin_key,
            }
        )
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and every process it started: it says no goodbye."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL to its process group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def wait_for(
    check: Callable[[], T | None], *, timeout: float = 30, what: str = "the condition"
) -> T:
    """The first truthy value of `check()`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def job_with(api: JobPulse, key: str, value: str) -> JobPublic | None:
    """The job whose metadata[key] is value, if jobpulse holds it yet."""
    found = api.list_jobs(metadata={key: value})
    assert len(found) <= 1, found
    return found[0] if found else None


def ended(api: JobPulse, key: str, value: str, *, timeout: float = 30) -> JobPublic:
    """The job of metadata[key] = value once it has ended."""

    def check() -> JobPublic | None:
        job = job_with(api, key, value)
        return job if job is not None and job.status in ENDED else None

    return wait_for(check, timeout=timeout, what=f"the job of {key}={value} to end")


def statuses(api: JobPulse, job_id: str) -> list[str]:
    """The statuses a job went through, as its applied history shows them."""
    return [
        event.to_status
        for event in api.list_events(job_id)
        if event.applied and event.from_status != event.to_status
    ]


def assert_went(api: JobPulse, job_id: str, *path: str) -> None:
    """The job went through exactly `path`, as its history shows it. With the publisher
    instrumented, it starts pending whichever report arrives first (the publisher's or the
    worker's, two processes).
    """
    assert statuses(api, job_id) == [*path]


def once_running(api: JobPulse, key: str, value: str, *, timeout: float = 30) -> JobPublic:
    """The job of metadata[key] = value once it is running."""

    def check() -> JobPublic | None:
        job = job_with(api, key, value)
        return job if job is not None and job.status == "running" else None

    return wait_for(check, timeout=timeout, what=f"the job of {key}={value} to run")


def lost(api: JobPulse, job_id: str) -> JobPublic:
    """The job once the sweeper has flagged it stuck and then expired it (no heartbeat)."""

    def check() -> JobPublic | None:
        job = api.get_job(job_id)
        return job if job.status in ENDED else None

    job = wait_for(check, timeout=30, what="the sweeper to expire the job")
    assert job.status == "expired"
    assert job.stop_reason == "heartbeat_lost"
    reasons = [event.reason or "" for event in api.list_events(job_id)]
    assert any(reason.startswith("stuck: no heartbeat") for reason in reasons), reasons
    return job
