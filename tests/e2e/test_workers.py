"""`jobpulse serve --workers 2` on PostgreSQL, a real process: both workers answer on the one
port, a create through one reaches the streams of the other, the background duties run once,
the metrics sum over the workers, and the workers end with their supervisor. On SQLite more
than one worker is refused.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlencode

import pytest

from jobpulse.client import JobPulse
from jobpulse.dashboard.session import CSRF_COOKIE, SESSION_COOKIE
from tests.e2e.conftest import Server, cli, close, start, stop
from tests.e2e.test_callbacks import FAST, wait_for
from tests.receiver import Receiver

WORKERS = 2
#: Seconds the per-worker checks wait for both workers (each imports jobpulse as it starts).
SECONDS = 60


#: The tests of a served process: workers share a PostgreSQL database.
ON_POSTGRES = pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)


@pytest.fixture
def workers(empty_database_url: str) -> Iterator[Server]:
    """`serve --workers 2` on an empty PostgreSQL database, the duties' loops quick."""
    env = FAST | {"JOBPULSE_SWEEP_INTERVAL_S": "0.2"}
    server = start(empty_database_url, env=env, workers=WORKERS)
    yield server
    close(server)


def worker_pids(server: Server) -> list[int]:
    """The worker processes `server` supervises."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        with suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def holder(pids: list[int], client_port: int) -> int | None:
    """Which of `pids` holds the server's end of the loopback connection from
    `client_port`.
    """
    sockets = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == client_port:
            sockets.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):
                    if os.readlink(fd) in sockets:
                        return pid
    return None


def by_worker(server: Server, each: int) -> dict[int, list[http.client.HTTPConnection]]:
    """`each` open connections to `server`'s port held by each of its workers (the kernel
    hands a new connection to either), each one having been answered /healthz.
    """
    port = int(server.url.rsplit(":", 1)[1])
    held: dict[int, list[http.client.HTTPConnection]] = {}
    deadline = time.monotonic() + SECONDS
    while len(held) < WORKERS or min(len(c) for c in held.values()) < each:
        assert time.monotonic() < deadline, f"connections by worker: {held}"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        assert request(connection, "GET", "/healthz")[0] == 200
        assert connection.sock is not None
        pid = holder(worker_pids(server), connection.sock.getsockname()[1])
        if pid is None or len(held.setdefault(pid, [])) >= each:
            connection.close()
            continue
        held[pid].append(connection)
    return held


def request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    key: str | None = None,
    body: object = None,
) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, json.dumps(body) if body is not None else None, headers)
    answer = connection.getresponse()
    return answer.status, answer.read()


def created_total(metrics: bytes, job_type: str) -> float:
    found = re.search(
        rf'^jobpulse_jobs_created_total\{{job_type="{job_type}"\}} (\S+)$',
        metrics.decode(),
        re.MULTILINE,
    )
    assert found, metrics.decode()[:2000]
    return float(found.group(1))


@ON_POSTGRES
def test_both_workers_answer_share_streams_and_sum_metrics(workers: Server) -> None:
    held = by_worker(workers, each=2)
    (first, one), (second, other) = held.items()
    assert first != second
    key = workers.admin_key

    # A stream on the second worker sees a job created through the first.
    stream = other[0]
    stream.request("GET", "/v1/jobs/stream", headers={"Authorization": f"Bearer {key}"})
    answer = stream.getresponse()
    assert answer.status == 200
    time.sleep(0.3)
    status, body = request(one[1], "POST", "/v1/jobs", key, {"job_type": "summed"})
    assert status == 201
    job_id = json.loads(body)["id"]
    seen = b""
    deadline = time.monotonic() + 5
    while job_id.encode() not in seen:
        assert time.monotonic() < deadline, seen
        seen += answer.read1(65536)
    stream.close()

    # Three more creates through each worker: every scrape, on either, counts all seven.
    for connection in (one[1], other[1]):
        for _ in range(3):
            assert request(connection, "POST", "/v1/jobs", key, {"job_type": "summed"})[0] == 201
    for connection in (one[0], one[1], other[1]):
        status, metrics = request(connection, "GET", "/metrics")
        assert status == 200
        assert created_total(metrics, "summed") == 7
        # A gauge read from the database is shown once, not once per worker.
        assert 'jobpulse_jobs_active{status="created"} 7.0' in metrics.decode()
    for connections in held.values():
        for connection in connections:
            connection.close()
    assert stop(workers) == 0  # SIGTERM drains both workers and ends the supervisor


def cookie(answer: http.client.HTTPResponse, name: str) -> str:
    """The value of the cookie `name` that `answer` sets."""
    for header in answer.headers.get_all("set-cookie") or []:
        found, _, rest = header.partition("=")
        if found == name:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie in {answer.headers}")


@ON_POSTGRES
def test_a_dashboard_session_holds_on_every_worker(workers: Server) -> None:
    """Signed in through one worker, the browser's cookie is good on the other."""
    (one,), (other,) = by_worker(workers, each=1).values()
    one.request("GET", "/login")
    answer = one.getresponse()
    answer.read()
    csrf = cookie(answer, CSRF_COOKIE)
    form = urlencode({"key": workers.admin_key, "csrf": csrf, "next": "/jobs"})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    one.request("POST", "/login", form, headers | {"Cookie": f"{CSRF_COOKIE}={csrf}"})
    answer = one.getresponse()
    answer.read()
    assert answer.status == 303, answer.headers
    session = cookie(answer, SESSION_COOKIE)
    other.request("GET", "/jobs", headers={"Cookie": f"{SESSION_COOKIE}={session}"})
    answer = other.getresponse()
    assert answer.status == 200, answer.headers  # not sent back to sign in
    answer.read()
    one.close()
    other.close()


@ON_POSTGRES
def test_the_duties_run_once_across_workers(workers: Server, receiver: Receiver) -> None:
    """A callback is delivered once, a job past its deadline is expired once."""
    with JobPulse(workers.url, workers.admin_key) as client:
        ended = client.create_job(status="running", callback_url=receiver.url)
        client.update_job(ended.id, status="completed")
        late = client.create_job(status="running", callback_url=receiver.url, timeout_s=1)
        wait_for(lambda: client.get_job(late.id).status == "expired")
        wait_for(lambda: len(receiver.received) >= 2)
        time.sleep(2)  # a second delivery or sweep would have happened by now
        expiries = [e for e in client.list_events(late.id) if e.to_status == "expired"]
        assert len(expiries) == 1
    assert sorted(r.json["job_id"] for r in receiver.received) == sorted([ended.id, late.id])


@ON_POSTGRES
def test_killing_the_supervisor_ends_the_workers(workers: Server) -> None:
    for connections in by_worker(workers, each=1).values():  # both serve
        connections[0].close()
    pids = worker_pids(workers)
    assert len(pids) == WORKERS
    workers.process.send_signal(signal.SIGKILL)
    workers.process.wait()

    def ended(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        return state in ("Z", "X")  # exited, not yet reaped by whoever adopted it

    wait_for(lambda: all(ended(pid) for pid in pids), seconds=SECONDS)


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    done = cli("serve", "--workers", "2", "--port", "9", "--database-url", url, check=False)
    assert done.returncode == 1
    assert "--workers 2 needs PostgreSQL" in done.stderr
    assert "a SQLite file is served by one process" in done.stderr
