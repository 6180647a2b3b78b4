"""No-op tasks for the executors' benchmark, and a worker for each that drains one queue:
`python -m benchmarks.executor_apps rq|dramatiq|arq`, told its queue by BENCH_EXECUTOR_QUEUE.
With BENCH_EXECUTOR_URL and BENCH_EXECUTOR_KEY set, the worker alone is instrumented, and
the delays of its reports (s, from the hook to jobpulse's answer) go to BENCH_EXECUTOR_DELAYS.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from jobpulse.integrations.reporter import Reporter

#: The benchmark's Redis database (the executors' tests use 11 to 13, on other queues).
REDIS_URL = "redis://127.0.0.1:6379/11"
QUEUE = os.environ.get("BENCH_EXECUTOR_QUEUE", "bench-executors")


def stamp(key: str) -> None:
    """Mark the time in Redis under `key` (the first and last task of a run)."""
    Redis.from_url(REDIS_URL).set(key, time.time())


def noop() -> None:
    return None


async def arq_stamp(ctx: dict[str, Any], key: str) -> None:
    await ctx["redis"].set(key, time.time())


async def arq_noop(ctx: dict[str, Any]) -> None:
    return None


def dramatiq_broker(queue: str) -> dramatiq.Broker:
    """A Redis broker of the queue's own (its keys gone with the queue's run)."""
    return RedisBroker(url=REDIS_URL, namespace=f"bench-{queue}")  # type: ignore[no-untyped-call]


broker = dramatiq_broker(QUEUE)
dramatiq.set_broker(broker)
dramatiq_stamp = dramatiq.actor(queue_name=QUEUE, max_retries=0)(stamp)
dramatiq_noop = dramatiq.actor(queue_name=QUEUE, max_retries=0)(noop)


def _target() -> tuple[str, str] | None:
    """(url, key) of the jobpulse to report to, when the worker is to be instrumented."""
    url, key = os.environ.get("BENCH_EXECUTOR_URL"), os.environ.get("BENCH_EXECUTOR_KEY")
    return (url, key) if url and key else None


def _write_delays(reporter: Reporter | None) -> None:
    if reporter is None:
        return
    reporter.flush(timeout_s=60)
    delays = "\n".join(f"{delay:.6f}" for delay in reporter.stats.delays)
    Path(os.environ["BENCH_EXECUTOR_DELAYS"]).write_text(delays)


def run_rq() -> None:
    from rq import Queue, Worker

    from jobpulse.integrations import rq

    redis = Redis.from_url(REDIS_URL)
    worker = Worker([Queue(QUEUE, connection=redis)], connection=redis)
    target = _target()
    reporter = rq.instrument(worker, url=target[0], api_key=target[1]) if target else None
    worker.work(burst=True, logging_level="WARNING")
    _write_delays(reporter)


def run_dramatiq() -> None:
    from jobpulse.integrations import dramatiq as jobpulse_dramatiq

    target = _target()
    reporter = (
        jobpulse_dramatiq.instrument(broker, url=target[0], api_key=target[1]) if target else None
    )
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    redis = Redis.from_url(REDIS_URL)
    while redis.get(f"{QUEUE}:end") is None:
        time.sleep(0.05)
    worker.stop()
    _write_delays(reporter)


def run_arq() -> None:
    from arq.connections import RedisSettings
    from arq.worker import run_worker

    from jobpulse.integrations import arq

    settings: dict[str, Any] = {
        "functions": [arq_stamp, arq_noop],
        "redis_settings": RedisSettings.from_dsn(REDIS_URL),
        "queue_name": QUEUE,
        "burst": True,
        "poll_delay": 0.05,
        "max_jobs": 1,  # one at a time, as the other executors' single worker
    }
    target = _target()
    reporter = arq.instrument(settings, url=target[0], api_key=target[1]) if target else None
    asyncio.set_event_loop(asyncio.new_event_loop())
    run_worker(settings)
    _write_delays(reporter)


if __name__ == "__main__":
    {"rq": run_rq, "dramatiq": run_dramatiq, "arq": run_arq}[sys.argv[1]]()
