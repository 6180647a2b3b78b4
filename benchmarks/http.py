"""HTTP transitions/s: PATCH /v1/jobs/{id} on `jobpulse serve` processes, next to a
hello-world FastAPI PATCH served by uvicorn the same way (one process, uvloop, no access log).
The servers share one core and are loaded at the same moment, each by its own wrk with 64
connections on the other core (see `side_by_side`); or, unpinned, all float over every core.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from benchmarks.common import NO_STALE, ORG, fresh_database, seed
from jobpulse import Settings
from jobpulse.keys import KeyManager
from jobpulse.storage.sql_store import open_store

BIN = Path(sys.executable).parent
DURATION_S = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
CONNECTIONS = 64
#: The server under test runs on one core and wrk on the other, so that neither takes CPU
#: from the other (both would float over the two cores of the benchmark machine otherwise).
SERVER_CPU, LOAD_CPU = 0, 1
#: Each request moves the next seeded job (`seed` names them by number): built from the
#: number, not read from a file, so that every wrk starts loading its server at once.
PATCH_SCRIPT = """
local i = tonumber(os.getenv("ROUND")) * tonumber(os.getenv("PER_ROUND"))
wrk.method = "PATCH"
wrk.body = '{"status": "running"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("API_KEY")
request = function()
  local path = string.format("/v1/jobs/job-%012d", i)
  i = i + 1
  return wrk.format(nil, path)
end
"""
HELLO_SCRIPT = """
wrk.method = "PATCH"
wrk.body = '{"name": "jobpulse"}'
wrk.headers["Content-Type"] = "application/json"
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: int) -> list[str]:
    """A command prefix running a process on core `cpu`, where taskset exists."""
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def _wait(url: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, script: str, env: dict[str, str] | None = None, pin: bool = True) -> float:
    """Requests per second that wrk measured (on the load core if `pin`); every answer must
    have been a success.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        done = subprocess.run(
            [
                *(pinned(LOAD_CPU) if pin else []),
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{DURATION_S}s",
                "--timeout",
                "30s",
                "-s",
                lua.name,
                url,
            ],
            capture_output=True,
            text=True,
            env=os.environ | (env or {}),
            check=True,
        )
    failures = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if failures or "errors" in done.stdout.lower():
        raise RuntimeError(f"wrk saw failures:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def _serve(
    command: list[str], probe: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | (env or {}),
        # A session of its own: Linux's scheduler (autogroups) then shares a core between
        # servers, not between their threads, so a server with a second busy thread (SQLite's
        # writer) takes no share of the core from one with a single thread.
        start_new_session=True,
    )
    _wait(probe)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def serve_asgi(
    app: str, probe_path: str, cpu: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Serve an ASGI app of the benchmarks under uvicorn as `jobpulse serve` is served (on
    core `cpu` if given).
    """
    port = _free_port()
    command = [str(BIN / "uvicorn"), app, "--port", str(port), "--loop", "uvloop"]
    flags = ["--no-access-log", "--log-level", "warning"]
    probe = f"http://127.0.0.1:{port}{probe_path}"
    pin = [] if cpu is None else pinned(cpu)
    return _serve([*pin, *command, *flags], probe), port


async def _member_key(url: str) -> str:
    store = open_store(Settings(database_url=url))
    try:
        _key, secret = await KeyManager(store).create(organization_id=ORG, user_id="user-0")
        return secret
    finally:
        await store.close()


class Load(NamedTuple):
    """A server under test, and what wrk sends it."""

    pid: int
    url: str
    script: str
    env: dict[str, str]


class Run(NamedTuple):
    """One wrk run on one server: requests/s, and the server's CPU time per request."""

    rate: float
    cpu_per_request: float


@contextlib.asynccontextmanager
async def hello_world() -> AsyncIterator[Load]:
    """The baseline: a hello-world FastAPI POST."""
    process, port = serve_asgi("benchmarks.hello:app", "/docs", SERVER_CPU)
    try:
        yield Load(process.pid, f"http://127.0.0.1:{port}/hello", HELLO_SCRIPT, {})
    finally:
        _stop(process)


#: How `jobpulse` can start the server: as shipped; with every span kept in memory; the
#: same with one trace in ten sampled (OpenTelemetry's sampler settings, read by its SDK).
PLAIN = (str(BIN / "jobpulse"),)
TRACED = (sys.executable, "-m", "benchmarks.traced")
SAMPLED = (
    "env",
    "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG=0.1",
    *TRACED,
)


@contextlib.asynccontextmanager
async def jobpulse(
    kind: str,
    command: Sequence[str] = PLAIN,
    rounds: int = 1,
    *,
    workers: int = 1,
    cpu: int | None = SERVER_CPU,
) -> AsyncIterator[Load]:
    """`jobpulse serve` (with `workers` processes, on core `cpu` or none in particular) on a
    fresh `kind` database, loaded with PATCH transitions: each moves a different seeded job
    from created to running, so every request is a real transition.
    """
    per_round = 12_000 * DURATION_S
    async with fresh_database(kind) as url:
        job_ids = await seed(url, per_round * rounds, users=1, status="created")
        assert job_ids[-1] == f"job-{len(job_ids) - 1:012d}", "PATCH_SCRIPT builds the ids"
        secret = await _member_key(url)
        port = _free_port()
        flags = ["--port", str(port), "--database-url", url, "--no-access-log"]
        flags += ["--workers", str(workers)]
        probe = f"http://127.0.0.1:{port}/healthz"
        pin = [] if cpu is None else pinned(cpu)
        process = _serve([*pin, *command, "serve", *flags], probe, NO_STALE)
        env = {"API_KEY": secret, "PER_ROUND": str(per_round)}
        try:
            yield Load(process.pid, f"http://127.0.0.1:{port}", PATCH_SCRIPT, env)
        finally:
            _stop(process)


async def side_by_side(
    loads: Mapping[str, Load], rounds: int = 1, *, pin: bool = True, first_round: int = 0
) -> dict[str, list[Run]]:
    """Load every server at the same moment, `rounds` times, each with its own wrk; the
    servers' rounds count on from `first_round` (each moves jobs of its own).

    Pinned, the servers all run on one core, whose time they share: their rates compare what
    a request costs each of them (as does the CPU time each used), and a slow spell of the
    machine (this one's speed swings by a quarter from minute to minute) falls on all alike.
    Unpinned (`pin` false), servers and wrk float over every core, as they would deployed.
    """
    if not pin:
        for load in loads.values():
            _unpin(load.pid)
    runs: dict[str, list[Run]] = {name: [] for name in loads}
    for turn in range(first_round, first_round + rounds):
        cpu_before = {name: cpu_seconds(load.pid) for name, load in loads.items()}
        rates = await asyncio.gather(
            *(
                asyncio.to_thread(wrk, load.url, load.script, load.env | {"ROUND": str(turn)}, pin)
                for load in loads.values()
            )
        )
        for (name, load), rate in zip(loads.items(), rates, strict=True):
            used = cpu_seconds(load.pid) - cpu_before[name]
            runs[name].append(Run(rate, used / (rate * DURATION_S)))
    return runs


def _unpin(pid: int) -> None:
    """Let process `pid`, every thread of it, run on any core."""
    if shutil.which("taskset"):
        cores = f"0-{(os.cpu_count() or 1) - 1}"
        subprocess.run(
            ["taskset", "-a", "-p", "-c", cores, str(pid)], check=True, capture_output=True
        )


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` has used, all its threads included, and its
    child processes' (the workers of `serve --workers N`).
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)
