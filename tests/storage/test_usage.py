"""LLM usage in the store, on SQLite and PostgreSQL: concurrent records of one job, from two
replicas and among its transitions, add up exactly to their sum; a call id counts once; the
calls are listed in order, visible only to who sees the job, and go with it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from datetime import timedelta
from functools import partial

import pytest

from jobpulse.domain import JobChange, JobStatus, StopReason, plan_change, plan_heartbeat
from jobpulse.errors import NotFoundError
from jobpulse.storage.store import JobStore
from jobpulse.usage.rules import TOKEN_KINDS, Call, CostSource, to_usd
from tests.storage.conftest import ADMIN, ALICE, BOB, EVE, T0, created

MODELS = (("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4.1"), ("openai", "o3"))


def random_call(rng: random.Random, number: int) -> Call:
    provider, model = rng.choice(MODELS)
    cost = None if rng.random() < 0.1 else rng.randrange(10**12)
    return Call(
        id=f"call-{number}",
        provider=provider,
        model=model,
        recorded_at=T0 + timedelta(seconds=number),
        input_tokens=rng.randrange(100_000),
        output_tokens=rng.randrange(100_000),
        cache_read_tokens=rng.randrange(100_000),
        cache_write_tokens=rng.randrange(100_000),
        cost_pusd=cost,
        cost_source=None if cost is None else CostSource.CALLER,
        ttft_ns=rng.randrange(10**9),
    )


def expected_totals(calls: list[Call]) -> dict[str, object]:
    """The sum of `calls`, computed apart from jobpulse's own adding."""

    def part(chosen: list[Call]) -> dict[str, object]:
        costs = [call.cost_pusd for call in chosen]
        known = all(cost is not None for cost in costs)
        return {
            "calls": len(chosen),
            **{kind: sum(getattr(call, kind) for call in chosen) for kind in TOKEN_KINDS},
            "cost_usd": to_usd(sum(c for c in costs if c is not None)) if known else None,
        }

    keys = sorted({call.model_key for call in calls})
    by_model = {key: part([call for call in calls if call.model_key == key]) for key in keys}
    return part(calls) | {"by_model": by_model}


@pytest.mark.parametrize("seed", [1, 2])
async def test_concurrent_records_from_two_replicas_equal_their_sum(
    store: JobStore, other: JobStore, seed: int
) -> None:
    rng = random.Random(seed)
    jobs = [await created(store, status=JobStatus.RUNNING) for _ in range(3)]
    calls = {job.id: [random_call(rng, n) for n in range(24)] for job in jobs}
    work: list[Awaitable[object]] = []
    for job in jobs:
        for number, call in enumerate(calls[job.id]):
            work.append(rng.choice((store, other)).record_usage(ALICE, job.id, call))
            # Heartbeats merging progress go between the records: neither loses the other.
            beat = partial(plan_heartbeat, progress={f"k{number}": number}, now=T0, actor=None)
            work.append(rng.choice((store, other)).apply(ALICE, job.id, beat))
    rng.shuffle(work)
    await asyncio.gather(*work)
    for job in jobs:
        found = await other.get(ALICE, job.id)
        assert found.usage == expected_totals(calls[job.id])
        assert found.metadata == {f"k{number}": number for number in range(24)}
        listed = await store.list_usage(ALICE, job.id)
        assert sorted(call.id for call in listed) == sorted(call.id for call in calls[job.id])
        assert [call.recorded_at for call in listed] == sorted(c.recorded_at for c in listed)
        assert not any(call.late for call in listed)


async def test_a_call_id_counts_once_however_often_it_arrives(
    store: JobStore, other: JobStore
) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    rng = random.Random(7)
    call = random_call(rng, 1)
    outcomes = await asyncio.gather(
        *(rng.choice((store, other)).record_usage(ALICE, job.id, call) for _ in range(10))
    )
    assert sum(new for _job, _call, new in outcomes) == 1
    assert {stored for _job, stored, _new in outcomes} == {call}
    found = await store.get(ALICE, job.id)
    assert found.usage == expected_totals([call])
    # The same id on another job is another call.
    second = await created(store, status=JobStatus.RUNNING)
    _job, _call, new = await store.record_usage(ALICE, second.id, call)
    assert new


async def test_a_call_after_the_end_is_late_and_noted(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    end = JobChange(status=JobStatus.COMPLETED, stop_reason=StopReason.END_TURN)
    await store.apply(ALICE, job.id, partial(plan_change, change=end, now=T0, actor="alice"))
    before = len(await store.history(ALICE, job.id))
    call = random_call(random.Random(3), 1)
    ended, stored, new = await store.record_usage(ALICE, job.id, call)
    assert (new, stored.late, ended.status) == (True, True, JobStatus.COMPLETED)
    history = await store.history(ALICE, job.id)
    assert len(history) == before + 1
    note = history[-1]
    assert (note.from_status, note.to_status, note.applied) == (
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
        True,
    )
    assert note.reason is not None
    assert call.model_key in note.reason
    assert (await store.get(ALICE, job.id)).usage == expected_totals([call])


async def test_usage_is_seen_only_by_who_sees_the_job(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    call = random_call(random.Random(5), 1)
    for outsider in (BOB, EVE):
        with pytest.raises(NotFoundError):
            await store.record_usage(outsider, job.id, call)
        with pytest.raises(NotFoundError):
            await store.list_usage(outsider, job.id)
    with pytest.raises(NotFoundError):
        await store.record_usage(ALICE, "job-\x00", call)
    assert (await store.get(ALICE, job.id)).usage is None
    assert await store.list_usage(ALICE, job.id) == []
    await store.record_usage(ADMIN, job.id, call)
    assert await store.list_usage(ALICE, job.id) == [call]
    await store.delete(ALICE, job.id)
    with pytest.raises(NotFoundError):
        await store.list_usage(ADMIN, job.id)
