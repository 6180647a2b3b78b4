"""Every process docs/sqlite-sharing.md names shares one SQLite file with `serve` safely: the
CLI, an embedded JobManager, a second `serve` (refused), and a restart after `kill -9`.

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


def _round(server: Server, number: int) -> list[subprocess.CompletedProcess[str]]:
    """Every command of docs/sqlite-sharing.md on the database file once, in turn: those that
    open it (prune, keys, migrate, an embedded JobManager) and those that go through the API
    (jobs, batches).
    """
    db = ["--database-url", server.database_url]
    api = ["--url", server.url, "--key", server.admin_key]
    user = f"ops-{number % 2}"  # each of the two lanes revokes its own keys
    done = [
        cli("prune", "--older-than", "30d", "--dry-run", *db, check=False),
        cli("keys", "create", "--user", user, "--org", "default", *db, check=False),
    ]
    listed = cli("keys", "list", *db, check=False)
    done.append(listed)
    live = _live_keys(listed.stdout, user)
    assert live, listed.stdout  # the key just created, at least
    done.append(cli("keys", "revoke", live[-1], *db, check=False))
    done += [
        cli("prune", "--older-than", "30d", *db, check=False),
        cli("migrate", *db, check=False),
        cli("jobs", "list", "--status", "completed", *api, check=False),
        cli(
            "batches",
            "add",
            "--provider",
            "anthropic",
            "--batch-id",
            f"msgbatch_{number}",
            *api,
            check=False,
        ),
        subprocess.run(
            [sys.executable, "-c", EMBEDDED, server.database_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ),
    ]
    return done


def _live_keys(table: str, user: str) -> list[str]:
    """The ids of `user`'s keys not revoked, from `keys list`'s table (id first, revoked last)."""
    rows = ([cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines())
    return [row[0] for row in rows if len(row) == 7 and row[3] == user and not row[6]]


def _stored(path: Path, ids: list[str]) -> tuple[str, set[str]]:
    """SQLite's integrity check of the file, and which of `ids` it holds."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
        found = {row[0] for row in connection.execute("SELECT id FROM jobs")}
    return integrity, found & set(ids)


@pytest.mark.timeout(900)
def test_the_cli_a_worker_and_an_embedded_manager_share_the_file_with_serve(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobpulse.db"
    url = f"sqlite:///{path}"
    # Batches are polled at a closed loopback port: nothing leaves the machine.
    server = start(url, env={"JOBPULSE_ANTHROPIC_BASE_URL": "http://127.0.0.1:9"})
    worker = subprocess.Popen(
        [JOBPULSE, "worker", "--database-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Load(server) as load, ThreadPoolExecutor(2) as lanes:
            # Every command twenty times, in two lanes, beside the writers and the worker.
            rounds = lanes.map(lambda number: _round(server, number), range(20))
            for done in itertools.chain.from_iterable(rounds):
                assert done.returncode == 0, (done.args, done.stdout, done.stderr)
                assert server.process.poll() is None, f"serve died after {done.args}"
        assert server.process.poll() is None
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert load.failures == []
        assert len(load.acknowledged) > 100
        assert stop(server) == 0
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        close(server)
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        if worker.stderr is not None:
            worker.stderr.close()
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
