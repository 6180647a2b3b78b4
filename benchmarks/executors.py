"""The RQ, Dramatiq and arq integrations' cost: tasks/s of no-op tasks drained by one worker
from Redis (RQ's forking `Worker` and its `SimpleWorker`; each as fast as its executor runs
them, see executor_apps.py), without the integration and with it (the worker alone
instrumented, reporting to a `jobpulse serve` on SQLite), rounds alternating; and how long
its reports took to reach jobpulse at that rate (from the hook to jobpulse's answer). The
worker and the server each on a core of their own, as in integrations.py.
"""

from __future__ import annotations

import asyncio
import os
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
from benchmarks.draining import Drained, forget, read_delays, summary, watch
from benchmarks.http import BIN, LOAD_CPU, SERVER_CPU, _free_port, _stop, pinned
from benchmarks.integrations import _serve

#: No-op tasks a round, about 5 to 10 s of each worker's drain (a second's drain moves by a
#: tenth with any hiccup of a shared machine); BENCH_EXECUTOR_TASKS sets one for all.
TASKS = {"rq": 1000, "rq-simple": 3000, "dramatiq": 10000, "arq": 10000}
if "BENCH_EXECUTOR_TASKS" in os.environ:
    TASKS = dict.fromkeys(TASKS, int(os.environ["BENCH_EXECUTOR_TASKS"]))
ROUNDS = int(os.environ.get("BENCH_EXECUTOR_ROUNDS", "3"))
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


def drain(executor: str, jobpulse: tuple[str, str] | None, tasks: int) -> Drained:
    """One worker of `executor` draining `tasks` no-op tasks (instrumented when `jobpulse`,
    its (url, key), is given), and the delays of its reports.
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
        worker = subprocess.Popen(
            [*pinned(LOAD_CPU), sys.executable, "-m", "benchmarks.executor_apps", executor],
            cwd=ROOT,
            env=os.environ | env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            drained = watch(worker, executor_apps.REDIS_URL, queue, tasks)
            if worker.wait(timeout=900) != 0:
                raise RuntimeError(f"the {executor} worker failed")
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            forget(executor_apps.REDIS_URL, queue)
        if jobpulse is not None:
            drained.delays = read_delays(delays_file)
    return drained


async def measure() -> dict[str, dict[str, float]]:
    """Per executor: what `draining.summary` gives of its alternating rounds."""
    figures: dict[str, dict[str, float]] = {}
    async with fresh_database("sqlite") as url:
        secret = await admin_key(url)
        port = _free_port()
        command = [*pinned(SERVER_CPU), str(BIN / "jobpulse"), "serve", "--port", str(port)]
        command += ["--database-url", url]
        probe = f"http://127.0.0.1:{port}/readyz"
        process = await asyncio.to_thread(_serve, [*command, "--no-access-log"], probe)
        try:
            target = (f"http://127.0.0.1:{port}", secret)
            for executor in TASKS:
                rounds = []
                for _ in range(ROUNDS):
                    tasks = TASKS[executor]
                    plain = await asyncio.to_thread(drain, executor, None, tasks)
                    taken = await asyncio.to_thread(drain, executor, target, tasks)
                    rounds.append((plain, taken))
                figures[executor] = summary(rounds)
        finally:
            _stop(process)
    return figures
