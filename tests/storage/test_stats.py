"""Window figures (`Figures.stats`, `/v1/stats`) on SQLite and PostgreSQL: counts, rates,
quantiles, stop reasons, the series, stuck jobs and webhook health, in each caller's view."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection

from jobpulse import Actor, JobFilter, JobManager, JobStatus, Settings, StopReason
from jobpulse.domain import JobEvent
from jobpulse.retention.pruner import prune
from jobpulse.stats.figures import Figures
from jobpulse.stats.fold import fold_stats
from jobpulse.stats.windows import Bucket, Histogram, Window
from jobpulse.storage import changes as changes_module
from jobpulse.storage import rollups, transitions
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import job_rollups
from jobpulse.sweeper.loop import Sweeper
from tests.clock import T0, Clock
from tests.conftest import MakeKey
from tests.sql import database_of

ALICE = Actor("org-a", "alice")
BOB = Actor("org-a", "bob")
ADMIN = Actor("org-a", "root", is_admin=True)
HOUR = 3600


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[tuple[JobManager, Clock]]:
    clock = Clock()
    manager = JobManager(
        open_store(Settings(database_url=database_url)), clock, allow_private_callbacks=True
    )
    yield manager, clock
    await manager.close()


async def at(clock: Clock, seconds: float) -> None:
    clock.now = T0 + timedelta(seconds=seconds)


async def test_a_window_of_jobs_in_figures(jobs: tuple[JobManager, Clock]) -> None:
    manager, clock = jobs
    await at(clock, -HOUR)
    await manager.create_job(ALICE)  # before the window
    await at(clock, 600)
    first = await manager.create_job(
        ALICE, status="running", job_type="agent", callback_url="http://127.0.0.1:9/cb"
    )
    await at(clock, 601)
    await manager.record_first_token(ALICE, first.id)
    await at(clock, 605)
    await manager.update_job(ALICE, first.id, stop_reason="end_turn")
    await at(clock, 70 * 60)
    second = await manager.create_job(ALICE, status="running")
    await at(clock, 70 * 60 + 2)
    await manager.update_job(ALICE, second.id, stop_reason="error")
    await at(clock, 80 * 60)
    await manager.create_job(ALICE, status="pending", stale_after_s=60)
    await at(clock, 90 * 60)
    cancelled = await manager.create_job(ALICE)
    await manager.cancel_job(ALICE, cancelled.id)
    await manager.create_job(BOB, job_type="agent")
    await at(clock, 2 * HOUR)
    await Sweeper(manager).sweep()  # the pending one is stale: stuck

    window = Window(T0, T0 + timedelta(hours=3), Bucket.HOUR)
    mine = await Figures(manager).stats(ALICE, window=window)
    assert mine.total == 4
    assert mine.by_status[JobStatus.COMPLETED] == 1
    assert mine.by_status[JobStatus.FAILED] == 1
    assert mine.by_status[JobStatus.PENDING] == 1
    assert mine.by_status[JobStatus.CANCELLED] == 1
    assert mine.rate(JobStatus.COMPLETED) == pytest.approx(1 / 3)
    assert mine.rate(JobStatus.FAILED) == pytest.approx(1 / 3)
    assert mine.ttft.count == 1
    p50 = mine.ttft.quantile(0.5)
    assert p50 is not None
    assert 0.75 < p50 <= 1.0
    assert mine.duration.count == 3
    assert mine.stop_reasons == {"end_turn": 1, "error": 1, "cancelled": 1}
    assert [(p.start, p.created, p.completed, p.failed) for p in mine.series] == [
        (T0, 1, 1, 0),
        (T0 + timedelta(hours=1), 3, 0, 1),
        (T0 + timedelta(hours=2), 0, 0, 0),
    ]
    assert mine.stuck == 1
    assert mine.webhooks == {"pending": 1, "delivered": 0, "exhausted": 0}

    everyone = await Figures(manager).stats(ADMIN, window=window)
    assert everyone.total == 5
    agents = await Figures(manager).stats(ADMIN, JobFilter(job_type="agent"), window)
    assert agents.total == 2
    assert agents.webhooks["pending"] == 1
    daily = await Figures(manager).stats(
        ALICE, window=Window(T0, T0 + timedelta(days=2), Bucket.DAY)
    )
    assert [(p.start, p.created) for p in daily.series] == [
        (T0, 4),
        (T0 + timedelta(days=1), 0),
    ]
    outsider = await Figures(manager).stats(Actor("org-b", "eve"), window=window)
    assert outsider.total == 0
    assert outsider.rate(JobStatus.COMPLETED) is None
    assert outsider.ttft.quantile(0.5) is None


def test_quantiles_interpolate_within_their_bucket() -> None:
    histogram = Histogram((1.0, 2.0, 4.0), (10, 30, 40), 50)
    assert histogram.quantile(0.1) == pytest.approx(0.5)
    assert histogram.quantile(0.4) == pytest.approx(1.5)
    assert histogram.quantile(0.7) == pytest.approx(3.0)
    assert histogram.quantile(0.99) == 4.0  # beyond the last bound: the last bound


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bucket": "minute"}, "bucket"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "earlier"),
        ({"since": "2025-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"}, "366 days"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "bucket=day"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "3"}, "limit"),
    ],
)
async def test_a_bad_window_is_refused_clearly(
    http: httpx.AsyncClient, make_key: MakeKey, params: dict[str, str], message: str
) -> None:
    answer = await http.get("/v1/stats", params=params, headers=await make_key("o", "u"))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert message in answer.text


async def test_stats_over_http_follow_the_count(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    alice = await make_key("org-a", "alice")
    bob = await make_key("org-a", "bob")
    for body in ({"job_type": "agent"}, {"job_type": "agent", "status": "running"}, {}):
        await http.post("/v1/jobs", json=body, headers=alice)
    await http.post("/v1/jobs", json={"job_type": "agent"}, headers=bob)
    for params in ({}, {"job_type": "agent"}, {"status": "running"}):
        stats = (await http.get("/v1/stats", params=params, headers=alice)).json()
        count = (await http.get("/v1/jobs/count", params=params, headers=alice)).json()
        assert stats["total"] == count["total"]
        assert stats["by_status"] == count["by_status"]
    stats = (await http.get("/v1/stats", headers=alice)).json()
    assert stats["bucket"] == "hour"
    assert len(stats["series"]) in (24, 25)
    assert sum(point["created"] for point in stats["series"]) == 3
    assert stats["ttft"]["buckets"][0] == {"le": 0.001, "count": 0}
    assert set(stats["webhooks"]) == {"pending", "delivered", "exhausted"}


async def test_the_served_app_folds_what_is_written(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for body in ({"job_type": "agent"}, {"status": "running"}, {"status": "running"}):
        await http.post("/v1/jobs", json=body, headers=admin)
    store = app.state.jobs.store
    deadline = asyncio.get_running_loop().time() + 10
    while await store.database.read(rollups.pending):  # serve folds every second
        assert asyncio.get_running_loop().time() < deadline, "nothing folded the deltas"
        await asyncio.sleep(0.1)
    assert await store.database.read(rollups.totals)
    window = {"since": hour.isoformat(), "until": (hour + timedelta(hours=2)).isoformat()}
    stats = (await http.get("/v1/stats", params=window, headers=admin)).json()  # whole hours
    count = (await http.get("/v1/jobs/count", headers=admin)).json()
    assert count["total"] == 3
    assert (stats["total"], stats["by_status"]) == (count["total"], count["by_status"])


SCAN = timedelta(days=3650)
WINDOWS = (
    Window(T0 + timedelta(minutes=13), T0 + timedelta(hours=5, minutes=7), Bucket.HOUR),
    Window(T0, T0 + timedelta(hours=7), Bucket.HOUR),
    Window(T0 - timedelta(days=1), T0 + timedelta(days=1), Bucket.DAY),
    Window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=50), Bucket.HOUR),
    Window(T0 - timedelta(days=1, minutes=-313), T0 + timedelta(days=2, hours=3), Bucket.DAY),
    # By the hour over a whole day (its totals read by the day) and parts of two others.
    Window(T0 - timedelta(hours=18, minutes=47), T0 + timedelta(days=1, minutes=7), Bucket.HOUR),
)
QUERIES = (
    JobFilter(),
    JobFilter(job_type="agent"),
    JobFilter(statuses=frozenset({JobStatus.COMPLETED, JobStatus.FAILED})),
    JobFilter(active=True),
    JobFilter(stop_reason=StopReason.ERROR),
)


async def _agree(manager: JobManager) -> int:
    """Assert the figures from the rollups equal a scan's (a `created_after` filter the
    rollups do not keep makes `stats` scan): an organization's, each member's own, and an
    admin's of one user; how many were compared.
    """
    compared = 0
    views = [(ADMIN, query) for query in QUERIES]
    views += [(member, query) for member in (ALICE, BOB) for query in QUERIES]
    views += [(ADMIN, replace(query, user_id="bob")) for query in QUERIES]
    for actor, query in views:
        assert rollups.answers(actor, query)
        scan = replace(query, created_after=T0 - SCAN)
        assert not rollups.answers(actor, scan)
        for window in WINDOWS:
            rolled = await Figures(manager).stats(actor, query, window)
            scanned = await Figures(manager).stats(actor, scan, window)
            assert rolled == scanned, (actor, query, window)
            compared += rolled.total
    return compared


async def _workload(manager: JobManager, clock: Clock, seed: int) -> list[str]:
    """Jobs of two types and two users over six hours, moved at random; their ids."""
    chance = random.Random(seed)
    made = []
    for n in range(48):
        clock.now = T0 + timedelta(seconds=chance.randrange(-3600, 6 * 3600))
        actor = ALICE if n % 3 else BOB
        job = await manager.create_job(
            actor,
            job_type=chance.choice(("agent", "job")),
            status=chance.choice(("created", "running")),
        )
        made.append(job.id)
        clock.advance(chance.uniform(0.001, 90))
        if chance.random() < 0.6:
            await manager.record_first_token(actor, job.id)
        clock.advance(chance.uniform(0.5, 4000))
        ending = chance.random()
        if ending < 0.4:
            await manager.update_job(actor, job.id, status="completed", stop_reason="end_turn")
        elif ending < 0.6:
            await manager.update_job(actor, job.id, stop_reason="error")
        elif ending < 0.7:
            await manager.cancel_job(actor, job.id)
    return made


async def _many_at_once(manager: JobManager, clock: Clock, seed: int) -> list[str]:
    """Jobs made in four waves an hour apart, then moved forty at a time, each its own way
    (the writer runs them in batches: on PostgreSQL one UPDATE a batch); their ids.
    """
    chance = random.Random(seed)
    made: list[tuple[Actor, str]] = []
    for wave in range(4):
        clock.now = T0 + timedelta(hours=wave, seconds=chance.randrange(0, 3600))
        owners = [ALICE if chance.random() < 0.7 else BOB for _ in range(10)]
        kinds = [chance.choice(("agent", "job")) for _ in owners]
        created = await asyncio.gather(
            *(
                manager.create_job(owner, job_type=kind)
                for owner, kind in zip(owners, kinds, strict=True)
            )
        )
        made += [(owner, job.id) for owner, job in zip(owners, created, strict=True)]
    for _round in range(3):
        clock.advance(chance.uniform(1, 2000))
        moves = []
        for owner, job_id in made:
            move = chance.random()
            if move < 0.3:
                moves.append(manager.record_first_token(owner, job_id))
            elif move < 0.6:
                moves.append(manager.update_job(owner, job_id, status="running"))
            elif move < 0.8:
                ending = chance.choice(("completed", "failed"))
                moves.append(manager.update_job(owner, job_id, status=ending))
            elif move < 0.9:
                moves.append(manager.cancel_job(owner, job_id))
        await asyncio.gather(*moves, return_exceptions=True)  # some moves are refused
    return [job_id for _, job_id in made]


async def test_rollups_answer_as_a_scan_would(
    jobs: tuple[JobManager, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, clock = jobs
    batches: list[int] = []

    def written(
        connection: Connection,
        changes: Sequence[changes_module.JobWrite],
        events: Sequence[JobEvent] = (),
        messages: Sequence[changes_module.Queued] = (),
    ) -> dict[str, Any]:
        batches.append(len(changes))
        return changes_module.update_jobs(connection, changes, events, messages)

    monkeypatch.setattr(transitions, "update_jobs", written)
    made = await _workload(manager, clock, seed=1)
    made += await _many_at_once(manager, clock, seed=3)
    if database_of(manager).url.startswith("postgresql"):
        assert max(batches) > 1  # some jobs were written together (PostgreSQL's writers)
    assert await database_of(manager).read(rollups.pending) > 0
    assert await _agree(manager) > 0  # deltas only, nothing folded yet

    counted = await database_of(manager).read(rollups.totals)
    by_user = await database_of(manager).read(rollups.totals, by_user=True)
    assert by_user
    await database_of(manager).write(rollups.fold, 7)  # part folded
    await database_of(manager).write(rollups.fold, 7)
    assert await database_of(manager).read(rollups.totals) == counted, "a fold changes no count"
    assert await database_of(manager).read(rollups.totals, by_user=True) == by_user
    assert await _agree(manager) > 0
    await fold_stats(manager.store, drop_empty=True)  # the rest (PostgreSQL folds all at once)
    assert await database_of(manager).read(rollups.pending) == 0
    assert await _agree(manager) > 0  # all folded

    made += await _workload(manager, clock, seed=2)  # folded and waiting, mixed
    made += await _many_at_once(manager, clock, seed=4)
    for job_id in made[::5]:
        await manager.delete_job(ADMIN, job_id)
    assert await _agree(manager) > 0
    await fold_stats(manager.store)
    clock.now = T0 + timedelta(hours=4)
    assert sum((await prune(manager, timedelta(hours=1))).values()) > 0
    assert await _agree(manager) > 0
    await fold_stats(manager.store, drop_empty=True)
    total = await _agree(manager)
    assert total > 0
    everyone = await Figures(manager).stats(ADMIN, window=WINDOWS[2])
    listed = await manager.count_jobs(ADMIN, JobFilter(created_after=T0 - SCAN))
    assert everyone.total == listed.total


async def test_the_rollups_are_what_stats_reads(jobs: tuple[JobManager, Clock]) -> None:
    manager, clock = jobs
    await _workload(manager, clock, seed=3)
    await fold_stats(manager.store)
    before = await Figures(manager).stats(ADMIN, window=WINDOWS[1])
    await database_of(manager).write(lambda c: c.execute(job_rollups.update().values(jobs=0)))
    emptied = await Figures(manager).stats(ADMIN, window=WINDOWS[1])
    assert before.total > emptied.total, "whole hours are read from the rollups"
    assert emptied.total == 0
