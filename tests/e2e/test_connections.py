"""What one client can hold of a served jobpulse: silent and slow-header connections are
closed after the header deadline, bodies past the limit are refused however they are sent,
and everyone else is served meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, close, start


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    served = start(
        f"sqlite:///{tmp_path / 'jobpulse.db'}",
        env={"JOBPULSE_HEADER_TIMEOUT_S": "1", "JOBPULSE_KEEP_ALIVE_S": "1"},
    )
    yield served
    close(served)


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
