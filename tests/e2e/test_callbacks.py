"""Callbacks from real `jobpulse serve` processes: nothing is lost to kill -9, and two
replicas on one PostgreSQL deliver every event exactly once between them.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobpulse.client import JobPulse
from tests.e2e.conftest import Server, close, start
from tests.receiver import Receiver

FAST = {
    "JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
    "JOBPULSE_WEBHOOK_TIMEOUT_S": "1",
    # The shortest lease an attempt of 1 s allows: a killed worker's message is sent again
    # 6 s after it was claimed.
    "JOBPULSE_WEBHOOK_LEASE_S": "6",
    "JOBPULSE_WEBHOOK_POLL_S": "0.2",
    "JOBPULSE_WEBHOOK_RETRY_SCHEDULE": "0,0.5,0.5,1",
}


def wait_for(done: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill_9_mid_delivery_loses_nothing(empty_database_url: str, receiver: Receiver) -> None:
    server = start(empty_database_url, env=FAST)
    receiver.released.clear()  # hold the first delivery open
    with JobPulse(server.url, server.admin_key) as client:
        job = client.create_job(status="running", callback_url=receiver.url)
        client.update_job(job.id, stop_reason="end_turn")
    wait_for(receiver.got_one.is_set)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    close(server)
    receiver.released.set()

    again = start(empty_database_url, expect_key=False, env=FAST)
    try:
        wait_for(lambda: len(receiver.received) >= 2)
        first, second = receiver.received[:2]
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert second.json["job_id"] == job.id
        with JobPulse(again.url, server.admin_key) as client:
            wait_for(lambda: client.get_job(job.id).callback_status_code == 200)
    finally:
        close(again)


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_two_replicas_deliver_every_event_once(empty_database_url: str, receiver: Receiver) -> None:
    first = start(empty_database_url, env=FAST)
    second = start(empty_database_url, expect_key=False, env=FAST)
    servers: list[Server] = [first, second]
    try:
        clients = [JobPulse(server.url, first.admin_key) for server in servers]

        def run(number: int) -> str:
            client = clients[number % 2]
            job = client.create_job(status="running", callback_url=receiver.url)
            client.update_job(job.id, status="completed")
            return job.id

        with ThreadPoolExecutor(max_workers=8) as pool:
            job_ids = set(pool.map(run, range(500)))
        wait_for(lambda: len(receiver.received) >= 500, seconds=120)
        time.sleep(3)  # any duplicate would have arrived by now (leases are 2 s)
        per_job = Counter(request.json["job_id"] for request in receiver.received)
        assert set(per_job) == job_ids
        assert max(per_job.values()) == 1
        for client in clients:
            client.close()
    finally:
        for server in servers:
            close(server)
