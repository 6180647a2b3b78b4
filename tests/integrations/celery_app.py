"""The Celery app of the tests: the test process publishes with `make_app(...)`, and a real
worker runs `celery -A tests.integrations.celery_app worker`, configured by the environment
(`JP_CELERY_*`; without JP_CELERY_URL the worker is not instrumented).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from jobpulse.integrations import celery as tracking


def add(x: int, y: int) -> int:
    return x + y


def fail(message: str) -> None:
    raise ValueError(message)


def flaky(task: Any, failures: int) -> int:
    """Fails `failures` times (retried at once), then returns how many retries it took."""
    if task.request.retries < failures:
        raise task.retry(exc=ConnectionError(f"down {task.request.retries}"), countdown=0.05)
    return int(task.request.retries)


def beating(seconds: float) -> str:
    """Works in short steps, saying so at each (as a long task should)."""
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        step += 1
        tracking.heartbeat(step=step)
        time.sleep(0.05)
    return "finished"


def sleep(seconds: float) -> str:
    """Works without a word (its heartbeats come from the reporter's thread)."""
    time.sleep(seconds)
    return "slept"


def noop() -> None:
    """The benchmark's task."""


def make_app(
    broker: str,
    backend: str,
    queue: str,
    *,
    url: str | None = None,
    api_key: str | None = None,
    **options: Any,
) -> Celery:
    """The tests' tasks on `queue`; reported to jobpulse at `url` when given."""
    app = Celery("jobpulse_tests", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=queue,
        control_exchange=f"{queue}.control",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=600,
    )

    app.task(name="tests.add")(add)
    app.task(name="tests.fail")(fail)
    app.task(name="tests.flaky", bind=True, max_retries=5)(flaky)
    app.task(name="tests.beating")(beating)
    app.task(name="tests.sleep")(sleep)
    app.task(name="tests.noop")(noop)
    if url and api_key:
        tracking.instrument(app, url=url, api_key=api_key, **options)
    return app


def _from_environment() -> Celery | None:
    broker = os.environ.get("JP_CELERY_BROKER")
    if not broker:
        return None
    options: dict[str, Any] = {
        "heartbeat_s": float(os.environ.get("JP_CELERY_HEARTBEAT_S", "10")),
        "max_backoff_s": float(os.environ.get("JP_CELERY_MAX_BACKOFF_S", "0.5")),
    }
    if buffer := os.environ.get("JP_CELERY_BUFFER"):
        options["buffer"] = int(buffer)
    return make_app(
        broker,
        os.environ["JP_CELERY_BACKEND"],
        os.environ["JP_CELERY_QUEUE"],
        url=os.environ.get("JP_CELERY_URL"),
        api_key=os.environ.get("JP_CELERY_KEY"),
        **options,
    )


app = _from_environment()
