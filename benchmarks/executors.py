"""The RQ, Dramatiq and arq integrations' cost: tasks/s of no-op tasks drained by one worker
from Redis (RQ's forking `Worker` and its `SimpleWorker`; each as fast as its executor runs
them, see executor_apps.py), without the integration and with it (the worker alone
instrumented, reporting to a `jobpulse serve` on SQLite), rounds alternating; and how long
its reports took to reach jobpulse at that rate (from the hook to jobpulse's answer).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from arq.connections import RedisSettings, create_pool
from dramatiq import Message
from redis import Redis
from rq import Queue

from benchmarks import executor_apps
from benchmarks.common import admin_key, fresh_database
from benchmarks.http import BIN, _free_port, _stop
from benchmarks.integrations import _serve

TASKS = int(os.environ.get("BENCH_EXECUTOR_TASKS", "2000"))
ROUNDS = int(os.environ.get("BENCH_EXECUTOR_ROUNDS", "3"))
EXECUTORS = ("rq", "rq-simple", "dramatiq", "arq")
ROOT = Path(__file__).resolve().parents[1]


def _publish_rq(queue: str, tasks: int) -> None:
    with Redis.from_url(executor_apps.REDIS_URL) as redis:
        publisher = Queue(queue, connection=redis)
        publisher.enqueue(executor_apps.stamp, f"{queue}:start")
        for _ in range(tasks):
            publisher.enqueue(executor_apps.noop, result_ttl=60)
        publisher.enqueue(executor_apps.stamp, f"{queue}:end")


def _publish_dramatiq(queue: str, tasks: int) -> None:
    broker = executor_apps.dramatiq_broker(queue)
    broker.declare_queue(queue)

    def send(actor: str, *args: str) -> None:
        broker.enqueue(
            Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})
        )

    send("stamp", f"{queue}:start")
    for _ in range(tasks):
        send("noop")
    send("stamp", f"{queue}:end")
    broker.close()


async def _publish_arq(queue: str, tasks: int) -> None:
    redis = await create_pool(RedisSettings.from_dsn(executor_apps.REDIS_URL))
    await redis.enqueue_job("arq_stamp", f"{queue}:start", _queue_name=queue)
    for _ in range(tasks):
        await redis.enqueue_job("arq_noop", _queue_name=queue)
    await redis.enqueue_job("arq_stamp", f"{queue}:end", _queue_name=queue)
    await redis.aclose()


def _publish(executor: str, queue: str, tasks: int) -> None:
    if executor.startswith("rq"):
        _publish_rq(queue, tasks)
    elif executor == "dramatiq":
        _publish_dramatiq(queue, tasks)
    else:
        asyncio.run(_publish_arq(queue, tasks))


def drain(executor: str, jobpulse: tuple[str, str] | None, tasks: int) -> tuple[float, list[float]]:
    """Tasks/s of one worker of `executor` draining `tasks` no-op tasks (instrumented when
    `jobpulse`, its (url, key), is given), and the delays of its reports.
    """
    queue = f"bench-{executor}-{uuid.uuid4().hex[:8]}"
    _publish(executor, queue, tasks)
    with tempfile.TemporaryDirectory() as scratch:
        delays_file = Path(scratch) / "delays"
        env = {"BENCH_EXECUTOR_QUEUE": queue}
        if jobpulse is not None:
            env |= {
                "BENCH_EXECUTOR_URL": jobpulse[0],
                "BENCH_EXECUTOR_KEY": jobpulse[1],
                "BENCH_EXECUTOR_DELAYS": str(delays_file),
            }
        subprocess.run(
            [sys.executable, "-m", "benchmarks.executor_apps", executor],
            cwd=ROOT,
            env=os.environ | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=900,
            check=True,
        )
        with Redis.from_url(executor_apps.REDIS_URL) as redis:
            start, end = redis.get(f"{queue}:start"), redis.get(f"{queue}:end")
            assert start is not None, f"{executor}: the run never started"
            assert end is not None, f"{executor}: the run never ended"
            redis.delete(f"{queue}:start", f"{queue}:end")
        delays = (
            [float(line) for line in delays_file.read_text().split()]
            if jobpulse is not None
            else []
        )
    return tasks / (float(end) - float(start)), delays


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure() -> dict[str, dict[str, float]]:
    """Per executor: median tasks/s without and with, their ratio, reports p50/p99 (s)."""
    figures: dict[str, dict[str, float]] = {}
    async with fresh_database("sqlite") as url:
        secret = await admin_key(url)
        port = _free_port()
        command = [str(BIN / "jobpulse"), "serve", "--port", str(port), "--database-url", url]
        probe = f"http://127.0.0.1:{port}/readyz"
        process = await asyncio.to_thread(_serve, [*command, "--no-access-log"], probe)
        try:
            target = (f"http://127.0.0.1:{port}", secret)
            for executor in EXECUTORS:
                plain, instrumented, delays = [], [], []
                for _ in range(ROUNDS):
                    rate, _none = await asyncio.to_thread(drain, executor, None, TASKS)
                    plain.append(rate)
                    rate, taken = await asyncio.to_thread(drain, executor, target, TASKS)
                    instrumented.append(rate)
                    delays.extend(taken)
                ratios = [i / p for i, p in zip(instrumented, plain, strict=True)]
                figures[executor] = {
                    "plain": statistics.median(plain),
                    "instrumented": statistics.median(instrumented),
                    "ratio": statistics.median(ratios),
                    "reports": len(delays),
                    "p50": quantile(delays, 0.5) if delays else float("nan"),
                    "p99": quantile(delays, 0.99) if delays else float("nan"),
                }
        finally:
            _stop(process)
    return figures
