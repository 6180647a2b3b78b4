"""HTTP transitions/s: PATCH /v1/jobs/{id} on a `jobpulse serve` process, next to a
hello-world FastAPI POST served by uvicorn the same way (one process, uvloop, no access log),
both loaded by wrk with 64 connections in the same run. Each PATCH moves a different job
from created to running, so every request is a real, accepted transition.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import ORG, fresh_database, seed
from jobpulse import Settings
from jobpulse.keys import KeyManager
from jobpulse.storage.engine import Database

BIN = Path(sys.executable).parent
DURATION_S = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
CONNECTIONS = 64
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
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-s", lua.name, url],
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
    return _serve([*command, *flags], f"http://127.0.0.1:{port}{probe_path}"), port


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


async def transitions(kind: str, env: dict[str, str] | None = None) -> float:
    """Requests/s of PATCH transitions on `jobpulse serve` over a `kind` database."""
    async with fresh_database(kind) as url:
        job_ids = await seed(url, 12_000 * DURATION_S, users=1, status="created")
        secret = await _member_key(url)
        port = _free_port()
        process = _serve(
            [
                str(BIN / "jobpulse"),
                "serve",
                "--port",
                str(port),
                "--database-url",
                url,
                "--no-access-log",
            ],
            f"http://127.0.0.1:{port}/healthz",
            env,
        )
        try:
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as ids:
                ids.write("\n".join(job_ids))
                ids.flush()
                env = {"JOBS_FILE": ids.name, "API_KEY": secret}
                url_ = f"http://127.0.0.1:{port}"
                return await asyncio.to_thread(_wrk, url_, PATCH_SCRIPT, env)
        finally:
            _stop(process)
