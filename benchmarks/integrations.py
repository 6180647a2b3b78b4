"""The Celery integration's cost: tasks/s of a no-op task drained by one solo worker from
Redis, without the integration and with it (the worker alone instrumented, reporting to a
`jobpulse serve` on SQLite), rounds alternating; and how long its reports took to reach
jobpulse at that rate (from the signal to jobpulse's answer, p99).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

from benchmarks.celery_app import BROKER, make_app
from benchmarks.common import admin_key, fresh_database
from benchmarks.http import BIN, _free_port, _stop

TASKS = int(os.environ.get("BENCH_CELERY_TASKS", "2000"))
ROUNDS = int(os.environ.get("BENCH_CELERY_ROUNDS", "3"))
ROOT = Path(__file__).resolve().parents[1]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def drain(jobpulse: tuple[str, str] | None, tasks: int) -> tuple[float, list[float]]:
    """Tasks/s of one worker draining `tasks` no-op tasks (instrumented when `jobpulse`, its
    (url, key), is given), and the delays of its reports.
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
                *(sys.executable, "-m", "celery", "-A", "benchmarks.celery_app", "worker"),
                *("--pool", "solo", "-Q", queue, "-l", "warning", "-n", f"{queue}@%h"),
                *("--without-mingle", "--without-gossip", "--without-heartbeat"),
            ],
            cwd=ROOT,
            env=os.environ | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with redis.Redis.from_url(BROKER) as connection:
            deadline = time.monotonic() + 600
            while (end := connection.get(f"{queue}:end")) is None:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the benchmark worker stopped before draining its queue")
                time.sleep(0.05)
            start = connection.get(f"{queue}:start")
            assert start is not None
            connection.delete(f"{queue}:start", f"{queue}:end", queue)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=120)
        delays = (
            [float(line) for line in delays_file.read_text().split()]
            if jobpulse is not None
            else []
        )
    return tasks / (float(end) - float(start)), delays


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
    """Median tasks/s without and with the integration, and the reports' p50/p99 delay (s)."""
    async with fresh_database("sqlite") as url:
        secret = await admin_key(url)
        port = _free_port()
        command = [str(BIN / "jobpulse"), "serve", "--port", str(port), "--database-url", url]
        probe = f"http://127.0.0.1:{port}/readyz"
        process = await asyncio.to_thread(_serve, [*command, "--no-access-log"], probe)
        try:
            target = (f"http://127.0.0.1:{port}", secret)
            plain, instrumented, delays = [], [], []
            for _ in range(ROUNDS):
                rate, _none = await asyncio.to_thread(drain, None, TASKS)
                plain.append(rate)
                rate, taken = await asyncio.to_thread(drain, target, TASKS)
                instrumented.append(rate)
                delays.extend(taken)
        finally:
            _stop(process)
    return {
        "plain": statistics.median(plain),
        "instrumented": statistics.median(instrumented),
        "ratio": statistics.median(i / p for i, p in zip(instrumented, plain, strict=True)),
        "reports": len(delays),
        "p50": statistics.median(delays) if delays else float("nan"),
        "p99": p99(delays) if delays else float("nan"),
    }
