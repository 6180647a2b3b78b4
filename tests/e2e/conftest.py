"""A real `jobpulse serve` process on a fresh database of each kind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

JOBPULSE = str(Path(sys.executable).with_name("jobpulse"))


@dataclass(frozen=True)
class Server:
    """A running server: where it listens, its database, and the admin key it printed."""

    url: str
    database_url: str
    admin_key: str
    process: subprocess.Popen[str]
    #: Everything it printed after its banner (read all along, so that it never blocks).
    output: list[str]
    reader: threading.Thread


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the jobpulse command and return what it did."""
    done = subprocess.run(
        [JOBPULSE, *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def start(
    database_url: str,
    *,
    expect_key: bool = True,
    env: dict[str, str] | None = None,
    port: int | None = None,
    workers: int = 1,
) -> Server:
    """`jobpulse serve` on `port` (a free one unless given: to bring a stopped server back),
    with `workers` processes.
    """
    port = port or free_port()
    command = [JOBPULSE, "serve", "--port", str(port), "--database-url", database_url]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ | {"COLUMNS": "200"} | (env or {}),
    )
    assert process.stdout is not None
    try:
        banner = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner, banner
        key_line = process.stdout.readline() if expect_key else ": "
        assert key_line.startswith(("Admin API key, shown once: ", ": ")), key_line
    except BaseException:  # it did not start: leave nothing open behind
        process.kill()
        process.wait()
        process.stdout.close()
        raise
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    reader = threading.Thread(target=output.extend, args=(process.stdout,), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60  # workers each import jobpulse as they start
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    admin_key = key_line.split(": ", 1)[1].strip()
    return Server(url, database_url, admin_key, process, output, reader)


def stop(server: Server) -> int:
    """SIGTERM the server and return its exit status."""
    server.process.send_signal(signal.SIGTERM)
    return server.process.wait(timeout=30)


def close(server: Server) -> None:
    """Kill the server if it still runs and release its pipe."""
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()
    server.reader.join(timeout=10)  # the process is gone: its output has ended
    if server.process.stdout is not None:
        server.process.stdout.close()


@pytest.fixture
def empty_server(empty_database_url: str) -> Iterator[Server]:
    """`jobpulse serve` on an empty database (it migrates and makes the first key)."""
    server = start(empty_database_url)
    yield server
    close(server)
