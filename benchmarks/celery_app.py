"""The Celery app of the `integrations` benchmark: `celery -A benchmarks.celery_app worker`,
configured by the environment (BENCH_CELERY_*); instrumented when BENCH_CELERY_URL is set, and
then, at shutdown, it writes its reporter's delays (seconds, one a line) to
BENCH_CELERY_DELAYS.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import redis
from celery import Celery, signals

from jobpulse.integrations.celery import Instrumentation, instrument

BROKER = "redis://127.0.0.1:6379/14"


def noop() -> None:
    """The task measured."""


def stamp(key: str) -> None:
    """Note when the worker got here (the first and last task of a round)."""
    with redis.Redis.from_url(BROKER) as connection:
        connection.set(key, repr(time.time()))


def make_app(queue: str) -> Celery:
    app = Celery("jobpulse_bench", broker=BROKER)
    app.conf.update(
        task_default_queue=queue,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name="bench.noop")(noop)
    app.task(name="bench.stamp")(stamp)
    return app


def _dump(installed: Instrumentation, path: Path) -> None:
    installed.reporter.stats.delays = deque()  # every report's, not the last 10,000 only

    def dump(**_: Any) -> None:
        installed.reporter.flush(60)
        delays = list(installed.reporter.stats.delays)
        path.write_text("".join(f"{delay!r}\n" for delay in delays))

    signals.worker_shutdown.connect(dump, weak=False)


app = make_app(os.environ.get("BENCH_CELERY_QUEUE", "bench"))
if url := os.environ.get("BENCH_CELERY_URL"):
    _dump(
        instrument(app, url=url, api_key=os.environ["BENCH_CELERY_KEY"]),
        Path(os.environ["BENCH_CELERY_DELAYS"]),
    )
