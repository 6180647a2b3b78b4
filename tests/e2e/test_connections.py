"""What one client can hold of a served jobpulse: silent and slow-header connections are
closed after the header deadline, slow and trickled bodies after the body deadline, bodies
past the limit are refused however they are sent, a body without a key is never waited for,
headers past their limit are refused, one address holds a bounded share of the connections,
and everyone else is served meanwhile.

The server knows a client by its address: the tests play other clients from other loopback
addresses (127.0.0.2 and up, all of 127/8 is loopback on Linux).
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, close, start

BODY_TIMEOUT_S = 3.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    served = start(
        f"sqlite:///{tmp_path / 'jobpulse.db'}",
        env={
            "JOBPULSE_HEADER_TIMEOUT_S": "1",
            "JOBPULSE_KEEP_ALIVE_S": "1",
            "JOBPULSE_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        },
    )
    yield served
    close(served)


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def connect(server: Server, source: str = "127.0.0.1") -> socket.socket:
    """A raw connection to `server` from the loopback address `source`."""
    connection = socket.socket()
    connection.bind((source, 0))
    connection.connect(("127.0.0.1", port_of(server)))
    return connection


def slow_create(key: str | None) -> bytes:
    """The headers of a create announcing a 100 kB body, and its first byte."""
    authorization = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 100000\r\n{authorization}\r\n{{"
    ).encode()


def answer_until_closed(connection: socket.socket, within: float) -> bytes:
    """What the server sends on `connection` until it ends it (within `within` seconds)."""
    connection.settimeout(within)
    received = b""
    try:
        while data := connection.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    return received


def status_of(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def error_of(answer: bytes) -> dict[str, str]:
    error: dict[str, str] = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    return error


def open_sockets(pid: int) -> int:
    """How many sockets the process `pid` holds."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def closed_by_server(connection: socket.socket, within: float) -> bool:
    """Whether the server closes `connection` within `within` seconds."""
    connection.settimeout(within)
    try:
        return connection.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_silent_and_slow_header_connections_are_closed(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    slow = socket.create_connection(("127.0.0.1", port))
    started = time.monotonic()
    try:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        slow.sendall(b"Host: x\r\n")  # ... and the rest never comes
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        assert httpx.get(f"{server.url}/v1/jobs", headers=headers).status_code == 200
        assert all(closed_by_server(connection, within=5) for connection in [*silent, slow])
        assert time.monotonic() - started < 5
    finally:
        for connection in [*silent, slow]:
            connection.close()


def test_bodies_past_the_limit_are_413_declared_or_chunked(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json"}

    def chunked() -> Iterator[bytes]:
        yield b'{"metadata":{"x":"'
        for _ in range(32):
            yield b"x" * 65536
        yield b'"}}'

    with httpx.Client(base_url=server.url, headers=headers) as client:
        streamed = client.post("/v1/jobs", content=chunked())
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "payload_too_large"
        declared = client.post("/v1/jobs", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
        assert declared.status_code == 413
        assert client.get("/v1/jobs/count").json()["total"] == 0
        assert client.post("/v1/jobs", json={"status": "running"}).status_code == 201


def wait_closed(connections: list[socket.socket], until: float) -> dict[socket.socket, bytes]:
    """The connections the server ends by `until` (a monotonic time), each with what it sent."""
    received = dict.fromkeys(connections, b"")
    closed: dict[socket.socket, bytes] = {}
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ, connection)
        while len(closed) < len(connections) and (left := until - time.monotonic()) > 0:
            for ready, _ in selector.select(timeout=left):
                connection = ready.data
                try:
                    data = connection.recv(65536)
                except ConnectionResetError:
                    data = b""
                received[connection] += data
                if not data:
                    selector.unregister(connection)
                    closed[connection] = received[connection]
    return closed


def enough_open_files(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= count, "raise `ulimit -Hn`"


def test_slow_bodies_do_not_lock_everyone_else_out(server: Server) -> None:
    """1,100 connections send a create's headers and its first byte, then hold on: those
    without a key are answered 401 at once; of those with one, an address holds 256 at most
    (429 to the next) and each is answered 408 at the body deadline. Meanwhile another client
    creates a job at once, and the server lets go of them all.
    """
    enough_open_files(1_500)
    plan: list[tuple[str, str | None, int]] = [
        ("127.0.0.2", server.admin_key, 400),
        ("127.0.0.3", server.admin_key, 150),
        ("127.0.0.4", None, 550),
    ]
    baseline = open_sockets(server.process.pid)
    started = time.monotonic()
    slow: dict[socket.socket, str] = {}
    try:
        for source, key, count in plan:
            for _ in range(count):
                connection = connect(server, source)
                slow[connection] = source
                connection.sendall(slow_create(key))
        asked = time.monotonic()
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        created = httpx.post(f"{server.url}/v1/jobs", headers=headers, json={}, timeout=10)
        assert created.status_code == 201
        assert time.monotonic() - asked < 2
        closed = wait_closed(list(slow), until=started + 20)
        assert len(slow) - len(closed) <= 0.05 * len(slow)
        # The server holds their sockets a moment more, reading what still comes (the
        # clients keep theirs open), then closes them.
        while open_sockets(server.process.pid) - baseline > 0.05 * len(slow):
            assert time.monotonic() < started + 20, open_sockets(server.process.pid)
            time.sleep(0.2)
        answers = {source: Counter[int | None]() for source, _, _ in plan}
        for connection, answer in closed.items():
            answers[slow[connection]][status_of(answer)] += 1
        assert set(answers["127.0.0.4"]) == {401}, answers
        assert set(answers["127.0.0.3"]) == {408}, answers
        # Past 256, refused at once (a connection refused before its request was read may
        # be reset before its answer is: no status then).
        assert answers["127.0.0.2"][408] <= 256, answers
        assert set(answers["127.0.0.2"]) <= {408, 429, None}, answers
        assert answers["127.0.0.2"][429] > 0, answers
    finally:
        for connection in slow:
            connection.close()


def test_a_trickled_body_is_cut_at_the_body_deadline(server: Server) -> None:
    connection = connect(server)
    started = time.monotonic()
    try:
        connection.sendall(slow_create(server.admin_key))
        connection.settimeout(0.5)
        answer = b""
        while time.monotonic() - started < BODY_TIMEOUT_S + 10:
            try:
                data = connection.recv(65536)
            except TimeoutError:
                connection.sendall(b" ")  # two bytes a second: never the whole body
                continue
            if not data:
                break
            answer += data
        elapsed = time.monotonic() - started
    finally:
        connection.close()
    assert status_of(answer) == 408
    assert error_of(answer)["code"] == "request_timeout"
    assert BODY_TIMEOUT_S - 0.5 < elapsed < BODY_TIMEOUT_S + 3


@pytest.mark.parametrize("key", [None, "jp_not-a-key"], ids=["none", "unknown"])
def test_a_body_without_a_valid_key_is_not_waited_for(server: Server, key: str | None) -> None:
    connection = connect(server, "127.0.0.2")
    started = time.monotonic()
    try:
        connection.sendall(slow_create(key))
        answer = answer_until_closed(connection, within=5)
    finally:
        connection.close()
    assert time.monotonic() - started < 1
    assert status_of(answer) == 401
    assert error_of(answer)["code"] == "unauthorized"


def peak_memory_kib(pid: int) -> int:
    """The most memory the process `pid` has held at once (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def test_a_64_mib_header_is_431_and_the_server_stays_small(server: Server) -> None:
    before = peak_memory_kib(server.process.pid)
    connection = connect(server)
    chunk = b"a" * (1024 * 1024)

    def flood() -> None:
        try:
            for _ in range(64):
                connection.sendall(chunk)
        except OSError:  # the server closed the connection: what is left is not wanted
            pass

    started = time.monotonic()
    connection.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ")
    flooding = threading.Thread(target=flood)
    flooding.start()
    try:
        answer = answer_until_closed(connection, within=10)
        elapsed = time.monotonic() - started
        flooding.join(timeout=30)
    finally:
        connection.close()
    assert status_of(answer) == 431
    assert error_of(answer)["code"] == "headers_too_large"
    assert elapsed < 2
    assert peak_memory_kib(server.process.pid) - before < 16 * 1024
    # Headers within the limits are served.
    assert httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 32768}).status_code == 200
    fields = {f"X-{n}": "1" for n in range(90)}
    assert httpx.get(f"{server.url}/healthz", headers=fields).status_code == 200


def test_too_many_header_fields_are_431(server: Server) -> None:
    fields = {f"X-{n}": "1" for n in range(101)}
    refused = httpx.get(f"{server.url}/healthz", headers=fields)
    assert refused.status_code == 431
    assert refused.json()["error"]["code"] == "headers_too_large"


def test_pipelined_requests_after_a_large_body_are_served(server: Server) -> None:
    """The header limit counts the next request's headers only, in a chunk that also holds
    the end of a large body."""
    body = b'{"status": "running"}' + b" " * 200_000
    create = (
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.admin_key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    connection = connect(server)
    try:
        connection.sendall(create + body + health)
        answer = answer_until_closed(connection, within=10)
    finally:
        connection.close()
    assert answer.startswith(b"HTTP/1.1 201 ")
    assert answer.count(b"HTTP/1.1 200 ") == 1


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[Server]:
    """A server taking 12 connections, 5 from one address."""
    served = start(
        f"sqlite:///{tmp_path / 'jobpulse.db'}",
        env={
            "JOBPULSE_HEADER_TIMEOUT_S": "30",
            "JOBPULSE_MAX_CONNECTIONS": "12",
            "JOBPULSE_MAX_CONNECTIONS_PER_CLIENT": "5",
        },
    )
    yield served
    close(served)


def served_within(url: str, seconds: float) -> int:
    """The status of GET `url`, retried while it is 503 until `seconds` pass."""
    deadline = time.monotonic() + seconds
    while (status := httpx.get(url).status_code) == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


def test_one_address_holds_its_share_and_the_whole_is_still_bounded(
    small_server: Server,
) -> None:
    health = f"{small_server.url}/healthz"
    held = [connect(small_server, "127.0.0.2") for _ in range(5)]
    try:
        refused = connect(small_server, "127.0.0.2")
        answer = answer_until_closed(refused, within=5)
        refused.close()
        assert status_of(answer) == 429
        assert error_of(answer)["code"] == "too_many_connections"
        assert httpx.get(health).status_code == 200  # another address is served
        # Addresses within their share fill the server: past 12 connections, 503.
        held += [connect(small_server, "127.0.0.3") for _ in range(5)]
        held += [connect(small_server, "127.0.0.4") for _ in range(2)]
        assert served_within(health, 0) == 503
        for connection in held[-2:]:
            connection.close()
        assert served_within(health, 5) == 200
        # A connection let go is one its address may open again (once the server has seen
        # it go).
        held.pop(0).close()
        deadline = time.monotonic() + 5
        while True:
            again = connect(small_server, "127.0.0.2")
            again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = status_of(answer_until_closed(again, within=5))
            again.close()
            if status != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        for connection in held:
            connection.close()


def test_serve_raises_its_open_files_limit_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 1024:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # what the server starts with
    try:
        served = start(f"sqlite:///{tmp_path / 'jobpulse.db'}")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = Path(f"/proc/{served.process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3:5] == [str(hard), str(hard)]
    finally:
        close(served)
