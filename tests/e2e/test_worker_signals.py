"""`jobpulse worker` stopped by SIGTERM or Ctrl-C in the middle of a drain: it claims nothing
more, lets the callbacks it claimed go out and records them, and exits with 0 at once; the
next worker delivers the rest, and every callback arrives exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest

from jobpulse import Settings
from jobpulse.domain import OutboxMessage
from jobpulse.storage.outbox import insert_messages, pending_count
from jobpulse.storage.sql_store import open_store
from jobpulse.webhooks import payload
from tests.e2e.conftest import JOBPULSE
from tests.receiver import Receiver

BACKLOG = 1500
#: Callbacks received before each of three workers is stopped.
STOPS = (1, 150, 600)


async def _fill(database_url: str, url: str) -> None:
    store = open_store(Settings(database_url=database_url))
    try:
        now = datetime.now(UTC)
        messages = [
            OutboxMessage(payload.new_webhook_id(), "job.completed", url, {"n": n}, now)
            for n in range(BACKLOG)
        ]
        await store.database.write(insert_messages, messages)
    finally:
        await store.close()


async def _pending(database_url: str) -> int:
    store = open_store(Settings(database_url=database_url))
    try:
        return await store.database.read(pending_count)
    finally:
        await store.close()


def _worker(database_url: str) -> subprocess.Popen[str]:
    env = os.environ | {
        "JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
        "JOBPULSE_WEBHOOK_CONCURRENCY": "16",
        "JOBPULSE_WEBHOOK_HOST_CONCURRENCY": "16",
    }
    worker = subprocess.Popen(
        [JOBPULSE, "worker", "--database-url", database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert worker.stdout is not None
    assert "delivering" in worker.stdout.readline()
    return worker


def _stopped(worker: subprocess.Popen[str], signum: int) -> tuple[int, float, str]:
    """Its exit status, the seconds it took after `signum`, and what it wrote to stderr."""
    worker.send_signal(signum)
    sent = time.monotonic()
    try:
        status = worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        status = -1
    took = time.monotonic() - sent
    _, errors = worker.communicate()
    return status, took, errors


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_worker_stopped_mid_drain_exits_at_once_and_the_next_sends_the_rest(
    database_url: str, signum: int
) -> None:
    receiver = Receiver()
    try:
        asyncio.run(_fill(database_url, receiver.url))
        for stop_after in STOPS:
            worker = _worker(database_url)
            deadline = time.monotonic() + 60
            while len(receiver.received) < stop_after and time.monotonic() < deadline:
                time.sleep(0.001)
            status, took, errors = _stopped(worker, signum)
            assert status == 0, errors
            assert took < 10, f"the worker took {took:.1f} s to stop"
            assert "Traceback" not in errors, errors
        assert len(receiver.received) < BACKLOG, "stopped workers left nothing for the last"
        last = _worker(database_url)
        deadline = time.monotonic() + 60
        while asyncio.run(_pending(database_url)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _stopped(last, signal.SIGTERM)[0] == 0
        numbers = sorted(received.json["n"] for received in receiver.received)
        assert numbers == list(range(BACKLOG)), "a callback was lost or sent twice"
    finally:
        receiver.close()
