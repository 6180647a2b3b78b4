"""No-op tasks for the executors' benchmark, and a worker for each that drains one queue:
`python -m benchmarks.executor_apps rq|rq-simple|dramatiq|arq`, told its queue by
BENCH_EXECUTOR_QUEUE. Each worker runs as its executor runs by default, or faster where a
setting of the executor's own makes it faster for no-op tasks (see `run_arq`): the baseline
is the fastest fair way to run it.
With BENCH_EXECUTOR_URL and BENCH_EXECUTOR_KEY set, the worker alone is instrumented, and
the delays of its reports (s, from the hook to jobpulse's answer) go to BENCH_EXECUTOR_DELAYS.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
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


def _kept(reporter: Reporter | None) -> Reporter | None:
    """`reporter`, keeping the delay of every report of the run (not the last 10,000 only)."""
    if reporter is not None:
        reporter.stats.delays = deque()
    return reporter


def _write_delays(reporter: Reporter | None) -> None:
    if reporter is None:
        return
    reporter.flush(timeout_s=60)
    delays = "\n".join(f"{delay:.6f}" for delay in reporter.stats.delays)
    Path(os.environ["BENCH_EXECUTOR_DELAYS"]).write_text(delays)


def run_rq(simple: bool = False) -> None:
    """RQ's `Worker`, which forks a work horse for each job (RQ's default), or its
    `SimpleWorker`, which runs the jobs in its own process (the fastest way RQ has).
    """
    from rq import Queue, SimpleWorker, Worker

    from jobpulse.integrations import rq

    redis = Redis.from_url(REDIS_URL)
    kind = SimpleWorker if simple else Worker
    worker = kind([Queue(QUEUE, connection=redis)], connection=redis)
    target = _target()
    reporter = _kept(rq.instrument(worker, url=target[0], api_key=target[1]) if target else None)
    worker.work(burst=True, logging_level="WARNING")
    _write_delays(reporter)


def run_dramatiq() -> None:
    from jobpulse.integrations import dramatiq as jobpulse_dramatiq

    target = _target()
    reporter = (
        _kept(jobpulse_dramatiq.instrument(broker, url=target[0], api_key=target[1]))
        if target
        else None
    )
    # Its default 8 threads: with one, it prefetches 2 messages at a time and drains a
    # tenth as fast (160-250 against 1,700-2,500 no-op messages/s on the benchmark machine).
    worker = dramatiq.Worker(broker)
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
        # arq's default of 10 jobs at a time; one at a time ran one job a poll (about 20/s
        # against 800-1,400/s). A poll every 50 ms, not its default 500: it reads at most 100
        # jobs a poll, which capped a default worker near 200/s.
        "poll_delay": 0.05,
    }
    target = _target()
    reporter = _kept(arq.instrument(settings, url=target[0], api_key=target[1]) if target else None)
    asyncio.set_event_loop(asyncio.new_event_loop())
    run_worker(settings)
    _write_delays(reporter)


if __name__ == "__main__":
    runs = {
        "rq": run_rq,
        "rq-simple": lambda: run_rq(simple=True),
        "dramatiq": run_dramatiq,
        "arq": run_arq,
    }
    runs[sys.argv[1]]()
