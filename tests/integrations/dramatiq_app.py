"""Dramatiq actors as a user writes them, on a broker made where the worker imports it:
`python -m dramatiq tests.integrations.dramatiq_app` works them with the integration
installed by its one call (when JOBPULSE_URL is set, as the tests set it for the worker).
DRAMATIQ_BROKER=rabbitmq puts them on RabbitMQ rather than Redis.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

#: The tests' own Redis database and queue (other suites use the same servers).
REDIS_URL = "redis://127.0.0.1:6379/12"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
QUEUE = "jobpulse-dramatiq-tests"


def make_broker(kind: str) -> dramatiq.Broker:
    if kind == "rabbitmq":
        return RabbitmqBroker(url=RABBITMQ_URL)
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=REDIS_URL, namespace="jobpulse-dramatiq-tests"
    )


def connection() -> Redis:
    """Where the actors keep what the tests check."""
    return Redis.from_url(REDIS_URL)


broker = make_broker(os.environ.get("DRAMATIQ_BROKER", "redis"))
dramatiq.set_broker(broker)

if os.environ.get("JOBPULSE_URL"):
    from jobpulse.integrations import dramatiq as jobpulse_dramatiq

    jobpulse_dramatiq.instrument(
        broker,
        url=os.environ["JOBPULSE_URL"],
        api_key=os.environ["JOBPULSE_API_KEY"],
        heartbeat_s=0.5,
    )


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def add(a: int, b: int, key: str) -> None:
    connection().set(key, a + b)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def boom(message: str) -> None:
    raise ValueError(message)


# Retried at once rather than after Dramatiq's 15 s.
@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=50, max_backoff=100)
def flaky(key: str, failures: int) -> None:
    """Fails its first `failures` runs (counted in Redis under `key`), then succeeds."""
    attempt = connection().incr(key)
    assert isinstance(attempt, int)
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} failed")


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=50, max_backoff=100)
def sleepy(seconds: float, key: str) -> None:
    """Works for `seconds` in short steps, then marks `key` finished in Redis."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    connection().set(key, "finished")
