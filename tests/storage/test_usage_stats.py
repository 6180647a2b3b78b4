"""LLM usage figures (`/v1/stats`' `usage`) on SQLite and PostgreSQL: the rollups answer as a
scan of the calls would, on random workloads; the figures are the calls' own sums.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from jobpulse import Actor, JobFilter, JobManager, Settings
from jobpulse.retention.pruner import prune
from jobpulse.stats.windows import Bucket, Window
from jobpulse.storage import usage_figures, usage_rollups
from jobpulse.storage.feature_tables import llm_usage_rollups
from jobpulse.storage.sql_store import open_store
from jobpulse.usage.figures import SUMMED, Facet, UsageFigures
from jobpulse.usage.prices import default_prices
from jobpulse.usage.recorder import UsageRecorder
from tests.clock import T0, Clock
from tests.sql import database_of

ALICE = Actor("org-a", "alice")
BOB = Actor("org-a", "bob")
ADMIN = Actor("org-a", "root", is_admin=True)
MODELS = (
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-4.1-mini"),
    ("acme", "unpriced-1"),
)
WINDOWS = (
    Window(T0 - timedelta(hours=2), T0 + timedelta(hours=8), Bucket.HOUR),
    Window(T0 + timedelta(minutes=17), T0 + timedelta(hours=5, minutes=41), Bucket.HOUR),
    Window(T0 - timedelta(days=1), T0 + timedelta(days=1), Bucket.DAY),
    Window(T0 + timedelta(minutes=5), T0 + timedelta(minutes=50), Bucket.HOUR),
)
#: A filter the usage rollups do not keep, true of every job: it makes the figures a scan.
SCAN = timedelta(days=30)


@pytest.fixture
async def recorder(database_url: str) -> AsyncIterator[tuple[UsageRecorder, Clock]]:
    clock = Clock()
    manager = JobManager(open_store(Settings(database_url=database_url)), clock)
    yield UsageRecorder(manager, default_prices()), clock
    await manager.close()


async def _workload(recorder: UsageRecorder, clock: Clock, seed: int) -> int:
    """Calls of jobs of two types and two users over six hours, some at once; how many."""
    chance = random.Random(seed)
    jobs = recorder.jobs
    made = []
    for n in range(12):
        clock.now = T0 + timedelta(seconds=chance.randrange(-600, 3600))
        owner = ALICE if n % 3 else BOB
        job = await jobs.create_job(owner, job_type=chance.choice(("agent", "job")))
        made.append((owner, job.id))
    calls = 0
    for _round in range(8):
        clock.now = T0 + timedelta(seconds=chance.randrange(0, 6 * 3600))
        records = []
        for owner, job_id in chance.sample(made, 6):
            provider, model = chance.choice(MODELS)
            timed = chance.random() < 0.8
            records.append(
                recorder.record(
                    owner,
                    job_id,
                    provider=provider,
                    model=model,
                    input_tokens=chance.randrange(10_000),
                    output_tokens=chance.randrange(2_000),
                    cache_read_tokens=chance.choice((None, chance.randrange(50_000))),
                    cost_usd=chance.choice((None, None, round(chance.uniform(0, 2), 6))),
                    ttft_ns=chance.randrange(10**10) if timed else None,
                    duration_ns=chance.randrange(10**11) if timed else None,
                )
            )
        await asyncio.gather(*records)
        calls += len(records)
    return calls


def _shown(figures: UsageFigures) -> object:
    models = sorted(figures.by_model)
    return (
        figures.total,
        figures.points(),
        figures.by_model,
        figures.by_job_type,
        [figures.histogram(key, facet) for key in models for facet in (Facet.TTFT, Facet.DURATION)],
        [figures.by_model[key].output_tokens_per_s() for key in models],
    )


async def _agree(recorder: UsageRecorder) -> int:
    compared = 0
    for query in (JobFilter(), JobFilter(job_type="agent"), JobFilter(model="gpt-4.1-mini")):
        assert usage_figures.answers(ADMIN, query)
        scan = replace(query, created_after=T0 - SCAN)
        assert not usage_figures.answers(ADMIN, scan)
        for window in WINDOWS:
            rolled = await recorder.figures(ADMIN, query, window)
            scanned = await recorder.figures(ADMIN, scan, window)
            assert _shown(rolled) == _shown(scanned), (query, window)
            compared += rolled.total["calls"]
    return compared


@pytest.mark.parametrize("seed", [1, 2])
async def test_usage_rollups_answer_as_a_scan_would(
    recorder: tuple[UsageRecorder, Clock], seed: int
) -> None:
    usage, clock = recorder
    calls = await _workload(usage, clock, seed)
    assert await _agree(usage) > 0
    everything = Window(T0 - timedelta(days=1), T0 + timedelta(days=1), Bucket.DAY)
    figures = await usage.figures(ADMIN, JobFilter(), everything)
    assert figures.total["calls"] == calls
    # The figures are the calls' own sums (as each job's usage totals them).
    jobs = await usage.jobs.list_jobs(ADMIN)
    listed = [call for job in jobs for call in await usage.list_calls(ADMIN, job.id)]
    assert len(listed) == calls
    assert figures.total["output_tokens"] == sum(call.output_tokens for call in listed)
    assert figures.total["cost_pusd"] == sum(call.cost_pusd or 0 for call in listed)
    assert figures.total["unpriced"] == sum(call.cost_pusd is None for call in listed)
    assert sum(job.usage["calls"] for job in jobs if job.usage) == calls
    # A member sees the calls of their own jobs only (a scan).
    mine = await usage.figures(ALICE, JobFilter(), everything)
    assert 0 < mine.total["calls"] < calls


async def test_whole_hours_are_read_from_the_usage_rollups(
    recorder: tuple[UsageRecorder, Clock],
) -> None:
    usage, clock = recorder
    await _workload(usage, clock, seed=3)
    before = await usage.figures(ADMIN, JobFilter(), WINDOWS[0])
    await database_of(usage.jobs).write(
        lambda c: c.execute(llm_usage_rollups.update().values(calls=0, output_tokens=0))
    )
    emptied = await usage.figures(ADMIN, JobFilter(), WINDOWS[0])
    assert before.total["calls"] > 0
    assert (emptied.total["calls"], emptied.total["output_tokens"]) == (0, 0)


async def _stored_rollups(recorder: UsageRecorder) -> dict[tuple[object, ...], list[int]]:
    r = llm_usage_rollups.c
    key = [r[name] for name in usage_rollups.KEY]
    summed = [r[name] for name in SUMMED]
    rows = await database_of(recorder.jobs).read(
        lambda c: c.execute(llm_usage_rollups.select().with_only_columns(*key, *summed)).all()
    )
    count = len(usage_rollups.KEY)
    return {tuple(row[:count]): list(row[count:]) for row in rows}


async def test_deleted_and_pruned_jobs_take_their_calls_out_of_the_rollups(
    recorder: tuple[UsageRecorder, Clock],
) -> None:
    usage, clock = recorder
    jobs = usage.jobs
    await _workload(usage, clock, seed=4)
    with_calls = [job for job in await jobs.list_jobs(ADMIN) if job.usage]
    # A job deleted by its owner; three ended, one of them with a late call, pruned later.
    deleted, *ended = with_calls[:4]
    await jobs.delete_job(Actor(deleted.organization_id, deleted.user_id), deleted.id)
    clock.now = T0 + timedelta(hours=7)
    for job in ended:
        await jobs.update_job(ADMIN, job.id, status="completed")
    await usage.record(ADMIN, ended[0].id, provider="openai", model="gpt-4.1-mini", input_tokens=7)
    clock.now = T0 + timedelta(days=40)
    assert (await prune(jobs, timedelta(days=30)))["jobs"] == len(ended)
    left = [job for job in await jobs.list_jobs(ADMIN) if job.usage]
    assert len(left) == len(with_calls) - 4
    # The rollups answer as a scan of the calls left does ...
    assert await _agree(usage) > 0
    everything = Window(T0 - timedelta(days=1), T0 + timedelta(days=1), Bucket.DAY)
    figures = await usage.figures(ADMIN, JobFilter(), everything)
    assert figures.total["calls"] == sum(job.usage["calls"] for job in left if job.usage)
    # ... and are exactly what recording those calls alone leaves: no row of a call gone,
    # none that counts nothing.
    recorded = [
        (job.organization_id, job.job_type, call)
        for job in left
        for call in await usage.list_calls(ADMIN, job.id)
    ]
    assert await _stored_rollups(usage) == usage_rollups.rollup_rows(recorded)
