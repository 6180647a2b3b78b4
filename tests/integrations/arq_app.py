"""arq job functions as a user writes them, and the worker the tests run:
`python -m tests.integrations.arq_app` installs the integration on WorkerSettings with its one
call and runs arq's own worker.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq import Retry
from arq.connections import RedisSettings
from arq.worker import func, run_worker

#: The tests' own Redis database and queue (other suites use the same server).
REDIS = RedisSettings(host="127.0.0.1", port=6379, database=13)
QUEUE = "jobpulse-arq-tests"


async def add(ctx: dict[str, Any], a: int, b: int) -> int:
    return a + b


async def boom(ctx: dict[str, Any], message: str) -> None:
    raise ValueError(message)


async def flaky(ctx: dict[str, Any], key: str, failures: int) -> int:
    """Asks for a retry on its first `failures` tries (counted in Redis under `key`)."""
    attempt = int(await ctx["redis"].incr(key))
    if attempt <= failures:
        raise Retry(defer=0.05)
    return attempt


async def sleepy(ctx: dict[str, Any], seconds: float, key: str) -> str:
    """Works for `seconds` in short steps, then marks `key` finished in Redis."""
    for _ in range(int(seconds / 0.05)):
        await asyncio.sleep(0.05)
    await ctx["redis"].set(key, "finished")
    return "finished"


async def startup(ctx: dict[str, Any]) -> None:
    ctx["started"] = True  # a hook of the user's own, kept by the integration


class WorkerSettings:
    functions = [
        add,
        boom,
        func(flaky, max_tries=3),
        sleepy,
        func(sleepy, name="slow", timeout=0.3),
    ]
    redis_settings = REDIS
    queue_name = QUEUE
    poll_delay = 0.1
    on_startup = startup


def main() -> None:
    from jobpulse.integrations import arq as jobpulse_arq

    jobpulse_arq.instrument(
        WorkerSettings,
        url=os.environ["JOBPULSE_URL"],
        api_key=os.environ["JOBPULSE_API_KEY"],
        heartbeat_s=0.5,
    )
    run_worker(WorkerSettings)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
