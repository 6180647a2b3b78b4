"""HTTP transitions/s: PATCH /v1/jobs/{id} on a `jobpulse serve` process, next to a
hello-world FastAPI POST served by uvicorn the same way (one process, uvloop, no access log),
both loaded by wrk with 64 connections in the same run (server and wrk on a core each). Each
PATCH moves a different job from created to running: every request is a real transition.
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

from benchmarks.common import ORG, fresh_database, seed
from jobpulse import Settings
from jobpulse.keys import KeyManager
from jobpulse.storage.engine import Database

BIN = Path(sys.executable).parent
DURATION_S = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
CONNECTIONS = 64
#: The server under test runs on one core and wrk on the other, so that neither takes CPU
#: from the other (both would float over the two cores of the benchmark machine otherwise).
SERVER_CPU, LOAD_CPU = 0, 1
PATCH_SCRIPT = """
local ids, i = {}, 0
for line in io.lines(os.getenv("JOBS_FILE")) do ids[#ids + 1] = line end
wrk.method = "PATCH"
wrk.body = '{"status": "running"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("API_KEY")
request = function()
  i = i + 1
  return wrk.format(nil, "/v1/jobs/" .. ids[i])
end
"""
HELLO_SCRIPT = """
wrk.method = "POST"
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _wrk(url: str, script: str, env: dict[str, str] | None = None) -> float:
    """Requests per second that wrk measured; every answer must have been a success."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        done = subprocess.run(
            [
                *pinned(LOAD_CPU),
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{DURATION_S}s",
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
    )
    _wait(probe)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def serve_asgi(app: str, probe_path: str) -> tuple[subprocess.Popen[bytes], int]:
    """Serve an ASGI app of the benchmarks under uvicorn as `jobpulse serve` is served."""
    port = _free_port()
    command = [str(BIN / "uvicorn"), app, "--port", str(port), "--loop", "uvloop"]
    flags = ["--no-access-log", "--log-level", "warning"]
    probe = f"http://127.0.0.1:{port}{probe_path}"
    return _serve([*pinned(SERVER_CPU), *command, *flags], probe), port


def hello_world() -> float:
    """Requests/s of the hello-world POST."""
    process, port = serve_asgi("benchmarks.hello:app", "/docs")
    try:
        return _wrk(f"http://127.0.0.1:{port}/hello", HELLO_SCRIPT)
    finally:
        _stop(process)


async def _member_key(url: str) -> str:
    database = Database(Settings(database_url=url))
    try:
        _key, secret = await KeyManager(database).create(organization_id=ORG, user_id="user-0")
        return secret
    finally:
        await database.close()


#: How `transitions` can start the server: as shipped; with every span kept in memory; the
#: same with one trace in ten sampled (OpenTelemetry's sampler settings, read by its SDK).
PLAIN = (str(BIN / "jobpulse"),)
TRACED = (sys.executable, "-m", "benchmarks.traced")
SAMPLED = (
    "env",
    "OTEL_TRACES_SAMPLER=parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG=0.1",
    *TRACED,
)


class Run(NamedTuple):
    """One wrk run on one server: requests/s, and the server's CPU time per request."""

    rate: float
    cpu_per_request: float


async def transitions(
    kind: str, servers: Mapping[str, Sequence[str]], rounds: int = 1
) -> dict[str, list[Run]]:
    """PATCH transitions on `jobpulse serve`, for each way of starting it in `servers`,
    `rounds` times.

    With several servers they run side by side: each on a database of its own, all on the
    same core, each loaded by its own wrk at the same moment. The core's time is shared, so
    their rates compare what a request costs each of them (as does the CPU time each used),
    and a slow spell of the machine (this one's speed swings by a quarter from minute to
    minute) falls on all of them alike.
    """
    per_run = 12_000 * DURATION_S
    async with contextlib.AsyncExitStack() as stack:
        loads = {}
        for name, command in servers.items():
            url = await stack.enter_async_context(fresh_database(kind))
            job_ids = await seed(url, per_run * rounds, users=1, status="created")
            secret = await _member_key(url)
            port = _free_port()
            flags = ["--port", str(port), "--database-url", url, "--no-access-log"]
            probe = f"http://127.0.0.1:{port}/healthz"
            process = _serve([*pinned(SERVER_CPU), *command, "serve", *flags], probe)
            stack.callback(_stop, process)
            loads[name] = (process.pid, port, secret, job_ids)
        runs: dict[str, list[Run]] = {name: [] for name in servers}
        for turn in range(rounds):
            cpu_before = {name: _cpu_seconds(pid) for name, (pid, *_rest) in loads.items()}
            rates = await asyncio.gather(
                *(
                    asyncio.to_thread(_patch_load, port, secret, ids[turn * per_run :][:per_run])
                    for _pid, port, secret, ids in loads.values()
                )
            )
            for (name, (pid, *_rest)), rate in zip(loads.items(), rates, strict=True):
                used = _cpu_seconds(pid) - cpu_before[name]
                runs[name].append(Run(rate, used / (rate * DURATION_S)))
    return runs


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time process `pid` has used, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _patch_load(port: int, secret: str, job_ids: list[str]) -> float:
    """wrk PATCHing each of `job_ids` to running, on the server at `port`."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as ids:
        ids.write("\n".join(job_ids))
        ids.flush()
        env = {"JOBS_FILE": ids.name, "API_KEY": secret}
        return _wrk(f"http://127.0.0.1:{port}", PATCH_SCRIPT, env)
