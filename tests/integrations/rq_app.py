"""RQ tasks as a user writes them (nothing of jobpulse in them) and the worker the tests run:
`python -m tests.integrations.rq_app` installs the integration with its one call and works
RQ's own forking Worker on the tests' queue.
"""

from __future__ import annotations

import os
import time

from redis import Redis
from rq import Queue, Worker

#: The tests' own Redis database and queue (other suites use the same server).
REDIS_URL = "redis://127.0.0.1:6379/11"
QUEUE = "jobpulse-rq-tests"


def connection() -> Redis:
    return Redis.from_url(REDIS_URL)


def add(a: int, b: int) -> int:
    return a + b


def boom(message: str) -> None:
    raise ValueError(message)


def flaky(key: str, failures: int) -> int:
    """Fails its first `failures` runs (counted in Redis under `key`), then succeeds."""
    attempt = connection().incr(key)
    assert isinstance(attempt, int)
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


def sleepy(seconds: float, key: str) -> str:
    """Works for `seconds` in short steps, then marks `key` finished in Redis."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    connection().set(key, "finished")
    return "finished"


def main() -> None:
    from jobpulse.integrations import rq as jobpulse_rq

    redis = connection()
    worker = Worker([Queue(QUEUE, connection=redis)], connection=redis)
    jobpulse_rq.instrument(
        worker,
        url=os.environ["JOBPULSE_URL"],
        api_key=os.environ["JOBPULSE_API_KEY"],
        heartbeat_s=0.5,
    )
    worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
