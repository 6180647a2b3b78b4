"""The Celery integration's cost: tasks/s of a no-op task drained by one solo worker from
Redis, without the integration and with it (the worker alone instrumented, reporting to a
`jobpulse serve` on SQLite), rounds alternating; and how long its reports took to reach
jobpulse at that rate (from the signal to jobpulse's answer, p99). The worker runs on one
core and the server on the other, in every round: jobpulse runs apart from the workers it
watches, and on two cores a server beside the worker would take the worker's CPU, which is
not the integration's cost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from benchmarks.celery_app import BROKER, make_app
from benchmarks.common import admin_key, fresh_database
from benchmarks.draining import Drained, forget, read_delays, summary, watch
from benchmarks.http import BIN, LOAD_CPU, SERVER_CPU, _free_port, _stop, pinned

TASKS = int(os.environ.get("BENCH_CELERY_TASKS", "10000"))
ROUNDS = int(os.environ.get("BENCH_CELERY_ROUNDS", "5"))
ROOT = Path(__file__).resolve().parents[1]


def drain(jobpulse: tuple[str, str] | None, tasks: int) -> Drained:
    """One worker draining `tasks` no-op tasks (instrumented when `jobpulse`, its (url, key),
    is given), and the delays of its reports.
    """
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    publisher = make_app(queue)
    publisher.send_task("bench.stamp", args=(f"{queue}:start",))
    for _ in range(tasks):
        publisher.send_task("bench.noop")
    publisher.send_task("bench.stamp", args=(f"{queue}:end",))
    publisher.close()
    with tempfile.TemporaryDirectory() as scratch:
        delays_file = Path(scratch) / "delays"
        env = {"BENCH_CELERY_QUEUE": queue}
        if jobpulse is not None:
            env |= {
                "BENCH_CELERY_URL": jobpulse[0],
                "BENCH_CELERY_KEY": jobpulse[1],
                "BENCH_CELERY_DELAYS": str(delays_file),
            }
        worker = subprocess.Popen(
            [
                *pinned(LOAD_CPU),
                *(sys.executable, "-m", "celery", "-A", "benchmarks.celery_app", "worker"),
                *("--pool", "solo", "-Q", queue, "-l", "warning", "-n", f"{queue}@%h"),
                *("--without-mingle", "--without-gossip", "--without-heartbeat"),
            ],
            cwd=ROOT,
            env=os.environ | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        drained = watch(worker, BROKER, queue, tasks)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)
        forget(BROKER, queue)
        if jobpulse is not None:
            drained.delays = read_delays(delays_file)
    return drained


def _serve(command: list[str], probe: str) -> subprocess.Popen[bytes]:
    """Start the server and wait for it (a loaded machine can take long to start it)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(probe).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    _stop(process)
    raise RuntimeError(f"{probe} did not come up")


async def measure() -> dict[str, float]:
    """Medians of tasks/s and of CPU per task without and with the integration, their
    ratios, and the reports' p50/p99 delay (s).
    """
    async with fresh_database("sqlite") as url:
        secret = await admin_key(url)
        port = _free_port()
        command = [*pinned(SERVER_CPU), str(BIN / "jobpulse"), "serve", "--port", str(port)]
        command += ["--database-url", url]
        probe = f"http://127.0.0.1:{port}/readyz"
        process = await asyncio.to_thread(_serve, [*command, "--no-access-log"], probe)
        try:
            target = (f"http://127.0.0.1:{port}", secret)
            rounds = []
            for _ in range(ROUNDS):
                plain = await asyncio.to_thread(drain, None, TASKS)
                rounds.append((plain, await asyncio.to_thread(drain, target, TASKS)))
        finally:
            _stop(process)
    return summary(rounds)
