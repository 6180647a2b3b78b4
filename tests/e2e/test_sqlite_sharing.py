"""Every process the README starts shares one SQLite file with `serve` safely: the CLI, an
embedded JobManager, a second `serve` (refused), and a restart after `kill -9`.

These run the real processes on a real file under write load. Each asserts what a user
would see: the server still up, every write it acknowledged still stored, and a database
that SQLite itself finds intact.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import JOBPULSE, Server, cli, close, start, stop

#: The embedded JobManager of another program, on the same file.
EMBEDDED = """
import asyncio, sys
from jobpulse import Actor, JobManager, Settings

async def main() -> None:
    jobs = JobManager.from_settings(Settings(database_url=sys.argv[1]))
    try:
        job = await jobs.create_job(Actor("embedded", "program"), status="running")
        await jobs.update_job(Actor("embedded", "program"), job.id, status="completed")
        print(job.id)
    finally:
        await jobs.close()

asyncio.run(main())
"""


class Load:
    """Writers creating and finishing jobs through the API; what was acknowledged."""

    def __init__(self, server: Server, writers: int = 4) -> None:
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._server = server
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write) for _ in range(writers)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _write(self) -> None:
        headers = {"Authorization": f"Bearer {self._server.admin_key}"}
        with httpx.Client(base_url=self._server.url, headers=headers, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    created = client.post("/v1/jobs", json={"status": "running"})
                except httpx.TransportError as exc:  # the server is gone
                    self.failures.append(repr(exc))
                    return
                if created.status_code != 201:
                    self.failures.append(f"{created.status_code} {created.text}")
                    continue
                job_id = created.json()["id"]
                self.acknowledged.append(job_id)
                try:
                    done = client.patch(f"/v1/jobs/{job_id}", json={"status": "completed"})
                except httpx.TransportError as exc:
                    self.failures.append(repr(exc))
                    return
                if done.status_code != 200:
                    self.failures.append(f"{done.status_code} {done.text}")


def _commands(url: str) -> Iterator[list[str]]:
    """The README's commands on the database file, round and round."""
    db = ["--database-url", url]
    return itertools.cycle(
        [
            ["prune", "--older-than", "30d", "--dry-run", *db],
            ["keys", "list", *db],
            ["keys", "create", "--user", "ops", "--org", "default", *db],
            ["prune", "--older-than", "30d", *db],
            ["migrate", *db],
            ["embedded"],
        ]
    )


def _run(command: list[str], url: str) -> subprocess.CompletedProcess[str]:
    if command == ["embedded"]:
        return subprocess.run(
            [sys.executable, "-c", EMBEDDED, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return cli(*command, check=False)


def _stored(path: Path, ids: list[str]) -> tuple[str, set[str]]:
    """SQLite's integrity check of the file, and which of `ids` it holds."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        found = {row[0] for row in connection.execute("SELECT id FROM jobs")}
    return integrity, found & set(ids)


@pytest.mark.timeout(900)
def test_the_cli_and_an_embedded_manager_share_the_file_with_serve(tmp_path: Path) -> None:
    path = tmp_path / "jobpulse.db"
    url = f"sqlite:///{path}"
    server = start(url)
    try:
        with Load(server) as load, ThreadPoolExecutor(2) as lanes:
            # Each of the six commands twenty times, two at a time, beside the writers.
            commands = list(itertools.islice(_commands(url), 6 * 20))
            for command, done in zip(
                commands, lanes.map(lambda c: _run(c, url), commands), strict=True
            ):
                assert done.returncode == 0, (command, done.stdout, done.stderr)
                assert server.process.poll() is None, f"serve died after {command}"
        assert server.process.poll() is None
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert load.failures == []
        assert len(load.acknowledged) > 100
        assert stop(server) == 0
    finally:
        close(server)
    integrity, found = _stored(path, load.acknowledged)
    assert integrity == "ok"
    assert len(found) == len(load.acknowledged), "acknowledged writes were lost"


def test_a_second_serve_on_the_same_file_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobpulse.db'}"
    server = start(url)
    try:
        second = subprocess.run(
            [JOBPULSE, "serve", "--port", "0", "--database-url", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "already serving" in second.stderr
        assert f"pid {server.process.pid}" in second.stderr
        assert "PostgreSQL" in second.stderr
        assert server.process.poll() is None
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert stop(server) == 0
    finally:
        close(server)
    # Once the first has stopped, the file can be served again.
    again = start(url, expect_key=False)
    try:
        assert httpx.get(f"{again.url}/readyz").status_code == 200
    finally:
        stop(again)
        close(again)


@pytest.mark.timeout(300)
def test_kill_during_checkpoints_then_the_cli_and_a_restart_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobpulse.db"
    url = f"sqlite:///{path}"
    # A checkpoint every few frames, so that the kills land in and between checkpoints.
    often = {"JOBPULSE_SQLITE_CHECKPOINT_FRAMES": "20"}
    acknowledged: list[str] = []
    first = start(url, env=often)
    key = first.admin_key
    restarts = (start(url, expect_key=False, env=often) for _ in range(2))
    for server in itertools.chain([first], restarts):
        served = Server(server.url, url, key, server.process, server.output, server.reader)
        try:
            with Load(served, writers=6) as load:
                time.sleep(3)
                server.process.send_signal(signal.SIGKILL)
                server.process.wait(timeout=30)
            acknowledged += load.acknowledged
        finally:
            close(server)
        for command in (["keys", "list"], ["prune", "--older-than", "30d", "--dry-run"]):
            assert cli(*command, "--database-url", url, check=False).returncode == 0
    restarted = start(url, expect_key=False)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=restarted.url, headers=headers) as client:
            for job_id in acknowledged:
                assert client.get(f"/v1/jobs/{job_id}").status_code == 200, job_id
        assert stop(restarted) == 0
    finally:
        close(restarted)
    integrity, found = _stored(path, acknowledged)
    assert integrity == "ok"
    assert len(found) == len(acknowledged)
    assert len(acknowledged) > 30
