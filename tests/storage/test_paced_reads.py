"""Figures read at a pace, on SQLite and PostgreSQL: a window read in slices of whole buckets
gives the very figures one scan gives, in every view; the read pauses between its slices
only while changes are being written, and its pauses count towards its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import Connection

from jobpulse import Actor, JobFilter, JobManager, Settings
from jobpulse.errors import ReadTimeoutError
from jobpulse.stats.figures import Figures
from jobpulse.stats.fold import fold_stats
from jobpulse.stats.windows import Bucket, Stats, Window
from jobpulse.storage import rollups, stats
from jobpulse.storage.engine import Database
from jobpulse.storage.scans import Pacer
from jobpulse.storage.sql_store import open_store
from tests.clock import T0, Clock
from tests.sql import database_of
from tests.storage.test_stats import (
    ADMIN,
    ALICE,
    BOB,
    QUERIES,
    WINDOWS,
    _many_at_once,
    _workload,
    jobs,
)

__all__ = ["jobs"]  # the fixture, shared with test_stats

YEAR = Window(T0 - timedelta(days=300), T0 + timedelta(days=66), Bucket.DAY)
#: A view of all of Alice's jobs that the rollups do not answer (they keep no `created_after`):
#: a scan, in slices.
SCANNED = JobFilter(created_after=YEAR.since - timedelta(days=1))


async def _sliced(database: Database, actor: Actor, query: JobFilter, window: Window) -> Stats:
    """The figures read one bucket a slice (a pacer that pauses after each, 0 s, with no
    bound on how many slices).
    """
    pauses: list[float] = []

    def read(connection: Connection) -> Stats:
        pacer = Pacer(lambda: True, pauses.append, 0.5, 30.0, slice_s=0, max_slices=10_000)
        return stats.window_stats(connection, pacer, actor, query, window)

    figures = await database.scan(read)
    if not rollups.answers(actor, query):  # else only the edges of its hours are scanned
        assert len(pauses) == len(window.starts()) - 1, "every bucket a slice of its own"
    return figures


async def test_slices_add_up_to_one_scan(jobs: tuple[JobManager, Clock]) -> None:
    manager, clock = jobs
    await _workload(manager, clock, seed=5)
    await _many_at_once(manager, clock, seed=6)
    await fold_stats(manager.store)
    await _workload(manager, clock, seed=7)  # some folded, some waiting
    compared = 0
    views = [(actor, query) for actor in (ALICE, BOB, ADMIN) for query in QUERIES]
    views.append((ALICE, JobFilter(metadata={"team": "search"})))
    for actor, query in views:
        for window in (*WINDOWS, YEAR):
            whole = await database_of(manager).scan(stats.window_stats, None, actor, query, window)
            assert await _sliced(database_of(manager), actor, query, window) == whole
            compared += whole.total
    assert compared > 0


async def _read_year(database: Database) -> tuple[float, Stats]:
    """The seconds a paced read of YEAR paused, and its figures."""

    def read(connection: Connection, pacer: Pacer) -> tuple[float, Stats]:
        figures = stats.window_stats(connection, pacer, ALICE, SCANNED, YEAR)
        return pacer.paused_s, figures

    return await database.paced_scan(read)


@contextlib.asynccontextmanager
async def _writing(manager: JobManager, job_id: str) -> AsyncIterator[None]:
    """Heartbeats of `job_id`, one after another, while the block runs."""
    stop = asyncio.Event()

    async def beat() -> None:
        while not stop.is_set():
            await manager.heartbeat(ALICE, job_id)

    task = asyncio.create_task(beat())
    try:
        await asyncio.sleep(0.05)
        yield
    finally:
        stop.set()
        await task


async def _year_of_jobs(manager: JobManager, clock: Clock) -> str:
    """Alice's jobs, one every other day over YEAR; the id of one running."""
    for day in range(0, 366, 2):
        clock.now = YEAR.since + timedelta(days=day, hours=5)
        job = await manager.create_job(ALICE, status="running")
        await manager.update_job(ALICE, job.id, status="completed")
    clock.now = T0
    return (await manager.create_job(ALICE, status="running")).id


async def test_a_read_makes_way_only_while_changes_are_written(
    jobs: tuple[JobManager, Clock],
) -> None:
    manager, clock = jobs
    running = await _year_of_jobs(manager, clock)
    await asyncio.sleep(0.6)  # the writes above are no longer recent
    paused, idle = await _read_year(database_of(manager))
    assert paused == 0  # at full speed
    async with _writing(manager, running):
        paused, busy = await _read_year(database_of(manager))
    assert paused > 0
    assert busy == idle  # the same figures, read at a pace
    assert busy.total == 184


async def test_a_read_pausing_past_its_time_is_stopped(database_url: str) -> None:
    settings = Settings(database_url=database_url, read_timeout_s=0.5, read_share=0.001)
    clock = Clock()
    manager = JobManager(open_store(settings), clock)
    try:
        running = await _year_of_jobs(manager, clock)
        async with _writing(manager, running):
            began = time.monotonic()
            with pytest.raises(ReadTimeoutError, match=r"took more than 0\.5 s"):
                await Figures(manager).stats(ALICE, SCANNED, YEAR)
            took = time.monotonic() - began
        assert 0.5 <= took < 2.5, took  # at its deadline, pauses included
        await asyncio.sleep(0.6)
        assert (await Figures(manager).stats(ALICE, SCANNED, YEAR)).total == 184  # idle: no pause
        # A member's view the rollups keep reads no job: no slice, nothing to pause for.
        async with _writing(manager, running):
            assert (await Figures(manager).stats(ALICE, window=YEAR)).total == 184
    finally:
        await manager.close()
