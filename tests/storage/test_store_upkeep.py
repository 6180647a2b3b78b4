"""Conformance: the sweeper's, retention's and the figures' operations."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

import pytest

from jobpulse.batches import BatchRef, Provider
from jobpulse.domain import Actor, JobStatus, Plan, StopReason
from jobpulse.errors import NotFoundError
from jobpulse.figures import Bucket, Window
from jobpulse.listing import JobFilter
from jobpulse.storage.outbox import Attempt
from jobpulse.storage.store import JobStore
from jobpulse.sweeping import SWEEPER, StaleLimits, plan_sweep
from jobpulse.webhooks import payload
from tests.storage.conftest import (
    ADMIN,
    ALICE,
    BOB,
    EVE,
    HOOK,
    T0,
    change,
    created,
    ended_with_callback,
    new_job,
    seconds,
)

DAY = timedelta(days=1)


def sweeper(now: datetime, stale: StaleLimits | None = None) -> partial[Plan]:
    """The sweeper's rules at `now`."""
    return partial(plan_sweep, now=now, stale=stale)


async def test_sweep_due_changes_jobs_past_their_deadline_or_silent(store: JobStore) -> None:
    late = await created(store, deadline_at=T0 + seconds(10))
    silent = await created(store, EVE, status=JobStatus.RUNNING, heartbeat_timeout_s=30)
    idle = await created(store, BOB, status=JobStatus.PENDING)
    fine = await created(store, deadline_at=T0 + DAY)
    early = T0 + seconds(5)
    assert await store.sweep_due(early, sweeper(early), 100, None) == []
    now = T0 + seconds(31)
    stale = StaleLimits(pending_s=20)
    changed = {
        job.id: (job, plan)
        for job, plan in await store.sweep_due(now, sweeper(now, stale), 100, stale)
    }
    assert set(changed) == {late.id, silent.id, idle.id}
    expired = await store.get(ALICE, late.id)
    assert (expired.status, expired.stop_reason) == (JobStatus.EXPIRED, StopReason.TIMEOUT)
    assert changed[late.id][0] == expired
    flagged = await store.get(EVE, silent.id)
    assert (flagged.status, flagged.stuck_since) == (JobStatus.RUNNING, now)
    assert (await store.get(BOB, idle.id)).stuck_since == now
    assert (await store.history(EVE, silent.id))[-1].actor == SWEEPER
    assert (await store.get(ALICE, fine.id)).status == JobStatus.CREATED
    # Done already: the next sweep finds nothing to do; one more period expires the silent.
    assert await store.sweep_due(now, sweeper(now, stale), 100, stale) == []
    later = now + seconds(30)
    [(lost, _plan)] = await store.sweep_due(later, sweeper(later), 100, None)
    assert (lost.id, lost.stop_reason) == (silent.id, StopReason.HEARTBEAT_LOST)


async def test_sweep_due_takes_at_most_limit(store: JobStore) -> None:
    for _ in range(3):
        await created(store, deadline_at=T0)
    now = T0 + seconds(1)
    assert len(await store.sweep_due(now, sweeper(now), 2, None)) == 2
    assert len(await store.sweep_due(now, sweeper(now), 2, None)) == 1


async def ended_with_webhook(store: JobStore, at: datetime) -> str:
    """A job ended at `at`, its callback delivered; its id."""
    job = await ended_with_callback(store, at - seconds(1))
    [claimed] = await store.claim_outbox(at, at + seconds(30), 10, None)
    done = Attempt(1, at, 200, None, 3.0, "delivered", None)
    await store.record_attempts([(claimed, done, None)])
    return job.id


async def test_count_old_counts_what_a_prune_would_remove(store: JobStore) -> None:
    old = [await ended_with_webhook(store, T0) for _ in range(2)]
    await ended_with_webhook(store, T0 + 10 * DAY)
    await created(store, at=T0 - DAY)  # active: never old
    assert await store.count_old(T0 + DAY) == {"jobs": 2, "attempts": 2, "messages": 2}
    assert await store.count_old(T0) == {"jobs": 0, "attempts": 0, "messages": 0}
    assert await store.count_old(T0 + 11 * DAY) == {"jobs": 3, "attempts": 3, "messages": 3}
    for job_id in old:  # a dry run: nothing went
        assert len(await store.list_attempts(ALICE, job_id)) == 1


async def test_prune_step_removes_old_ended_jobs_a_bounded_step_at_a_time(
    store: JobStore,
) -> None:
    old = [await ended_with_webhook(store, T0) for _ in range(3)]
    recent = await ended_with_webhook(store, T0 + 10 * DAY)
    active = await created(store, at=T0 - DAY)
    cutoff = T0 + DAY
    first = await store.prune_step(cutoff, 2)
    assert not first.finished
    assert first.removed["jobs"] == 2
    total = first.removed
    for _ in range(10):
        step = await store.prune_step(cutoff, 2)
        total = {kind: total[kind] + step.removed[kind] for kind in total}
        if step.finished:
            break
    assert step.finished
    assert total == {"jobs": 3, "attempts": 3, "messages": 3}
    assert await store.count_old(cutoff) == {"jobs": 0, "attempts": 0, "messages": 0}
    for job_id in old:
        with pytest.raises(NotFoundError):
            await store.get(ALICE, job_id)
    assert (await store.get(ALICE, recent)).status == JobStatus.FAILED
    assert len(await store.list_attempts(ALICE, recent)) == 1
    assert await store.get(ALICE, active.id) == active


WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=3), Bucket.HOUR)


async def fill(store: JobStore) -> None:
    """Jobs over the window's hours: ended, running, another member's, another org's."""
    for hour in range(3):
        at = T0 + timedelta(hours=hour, minutes=5)
        job = await created(store, status=JobStatus.RUNNING, at=at)
        await store.apply(
            ALICE,
            job.id,
            change(stop_reason=StopReason.END_TURN, ttft_ns=2_000_000, at=at + seconds(2)),
        )
        failing = await created(store, BOB, status=JobStatus.RUNNING, at=at)
        await store.apply(
            BOB, failing.id, change(stop_reason=StopReason.ERROR, at=at + seconds(1), by="bob")
        )
    await created(store, status=JobStatus.RUNNING, at=T0)
    await created(store, EVE, at=T0)


async def test_window_stats(store: JobStore) -> None:
    await fill(store)
    stats = await store.window_stats(ADMIN, JobFilter(), WINDOW)
    assert stats.total == 7
    assert (stats.by_status[JobStatus.COMPLETED], stats.by_status[JobStatus.FAILED]) == (3, 3)
    assert stats.by_status[JobStatus.RUNNING] == 1
    assert stats.stop_reasons == {"end_turn": 3, "error": 3}
    assert [point.created for point in stats.series] == [0, 3, 2, 2]
    assert [point.failed for point in stats.series] == [0, 1, 1, 1]
    assert stats.ttft.count == 3
    assert stats.duration.count == 6
    mine = await store.window_stats(ALICE, JobFilter(), WINDOW)
    assert (mine.total, mine.stop_reasons) == (4, {"end_turn": 3})
    assert (await store.window_stats(EVE, JobFilter(), WINDOW)).total == 1


async def test_fold_rollups_changes_no_figure(store: JobStore) -> None:
    await fill(store)
    before = await store.window_stats(ADMIN, JobFilter(), WINDOW)
    folded = 0
    while changed := await store.fold_rollups():
        folded += changed
    assert folded > 0
    assert await store.window_stats(ADMIN, JobFilter(), WINDOW) == before
    assert await store.fold_rollups() == 0


async def test_drop_empty_rollups(store: JobStore) -> None:
    job = await created(store, EVE, at=T0)
    while await store.fold_rollups():
        pass
    assert await store.drop_empty_rollups() == 0  # every row still counts a job
    await store.delete(EVE, job.id)
    while await store.fold_rollups():
        pass
    assert await store.drop_empty_rollups() > 0
    assert await store.drop_empty_rollups() == 0
    assert (await store.window_stats(Actor("org-b", "boss", True), JobFilter(), WINDOW)).total == 0


async def test_gauges(store: JobStore) -> None:
    empty = await store.gauges()
    idle = dict.fromkeys((JobStatus.CREATED, JobStatus.PENDING, JobStatus.RUNNING), 0)
    assert (empty.active, empty.stuck, empty.outbox_pending, empty.batches) == (idle, 0, 0, 0)
    job = await created(store)
    await created(store, EVE, status=JobStatus.RUNNING, heartbeat_timeout_s=1)
    ended = await created(store, status=JobStatus.PENDING)
    await store.apply(ALICE, ended.id, change(JobStatus.COMPLETED))
    now = T0 + seconds(2)
    await store.sweep_due(now, sweeper(now), 10, None)  # flags the silent one stuck
    step = {"step_id": "s", "status": "success", "metadata": {}, "created_at": now}
    await store.record_step(
        ALICE, job.id, step, payload.step(HOOK, job.id, "s", "success", {}, now)
    )
    metadata = {"provider": "openai", "batch_id": "batch_1"}
    batch = new_job(job_type="llm_batch", metadata=metadata)
    await store.create_batch_job(batch, None, BatchRef(Provider.OPENAI, "batch_1"))
    gauges = await store.gauges()
    assert gauges.active == idle | {JobStatus.CREATED: 2, JobStatus.RUNNING: 1}
    assert (gauges.stuck, gauges.outbox_pending, gauges.batches) == (1, 1, 1)
