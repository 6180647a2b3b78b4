"""Bulk cancel: 10,000 matching jobs cancelled through `BulkActions` (bounded steps, each its
own write that makes way for other changes) while another task moves other jobs through
their statuses; that task's p99 during the bulk cancel against its p99 alone.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from benchmarks.common import ORG, fresh_database, p99, seed
from jobpulse import Actor, JobManager, Settings
from jobpulse.bulk.actions import BulkActions
from jobpulse.heap import GIL_SWITCH_S
from jobpulse.listing import JobFilter

JOBS = int(os.environ.get("BENCH_BULK_JOBS", "10000"))
ADMIN = Actor(ORG, "admin", is_admin=True)
WRITER = Actor(ORG, "writer")
#: The statuses the other task moves each of its jobs through, one transition each.
STEPS = ("pending", "running", "completed")
ALONE_S = 3.0


class Mover:
    """Moves jobs of type `other` through STEPS, one transition at a time, timing each."""

    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self.latencies: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or len(self.latencies) < 200:
            job = await self.jobs.create_job(WRITER, job_type="other")
            for status in STEPS:
                began = time.perf_counter()
                await self.jobs.update_job(WRITER, job.id, status=status)
                self.latencies.append(time.perf_counter() - began)


async def measure(kind: str) -> dict[str, float]:
    """p99 of the other task's transitions alone and during the bulk cancel; the bulk's pace
    (jobs/s) and how many it cancelled. The GIL is handed over as `jobpulse serve` does.
    """
    sys.setswitchinterval(GIL_SWITCH_S)
    async with fresh_database(kind) as url:
        await seed(url, JOBS, users=10, status="running")
        jobs = JobManager.from_settings(Settings(database_url=url))
        try:
            alone = Mover(jobs)
            stop = asyncio.Event()
            task = asyncio.create_task(alone.run(stop))
            await asyncio.sleep(ALONE_S)
            stop.set()
            await task
            during = Mover(jobs)
            stop = asyncio.Event()
            task = asyncio.create_task(during.run(stop))
            await asyncio.sleep(0.2)
            began = time.perf_counter()
            result = await BulkActions(jobs).cancel(ADMIN, JobFilter(job_type="job"))
            seconds = time.perf_counter() - began
            stop.set()
            await task
        finally:
            await jobs.close()
    assert result.changed == JOBS, result
    return {
        "alone": p99(alone.latencies),
        "during": p99(during.latencies),
        "rate": result.changed / seconds,
        "seconds": seconds,
        "changed": result.changed,
        "transitions": len(during.latencies),
    }
