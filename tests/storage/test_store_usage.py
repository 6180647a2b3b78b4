"""Conformance: LLM calls of jobs, recorded with the job's totals in one transaction (once a
call id), listed, and added up over a window (from the rollups or a scan alike).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from jobpulse.domain import Actor, JobStatus, StopReason
from jobpulse.errors import NotFoundError
from jobpulse.listing import JobFilter
from jobpulse.stats.windows import Bucket, Window
from jobpulse.storage.store import JobStore
from jobpulse.usage.figures import Facet, UsageFigures
from jobpulse.usage.rules import Call, CostSource
from tests.storage.conftest import ADMIN, ALICE, BOB, EVE, T0, change, created, seconds

MINUTE = seconds(60)
HOUR = seconds(3600)


def call(
    call_id: str,
    at: datetime = T0,
    model: str = "claude-sonnet-4-5",
    provider: str = "anthropic",
    **fields: Any,
) -> Call:
    values: dict[str, Any] = {"input_tokens": 100, "output_tokens": 20} | fields
    return Call(id=call_id, provider=provider, model=model, recorded_at=at, **values)


PRICED: dict[str, Any] = {"cost_pusd": 3_000_000_000, "cost_source": CostSource.CALLER}


async def test_record_usage_adds_the_call_to_the_jobs_totals_once(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    first = call(
        "call-1", T0 + seconds(1), ttft_ns=400_000_000, duration_ns=2_000_000_000, **PRICED
    )
    shown, stored, new = await store.record_usage(ALICE, job.id, first)
    assert (stored, new) == (first, True)
    one_call = {
        "calls": 1,
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.003,
    }
    assert shown.usage == one_call | {"by_model": {"anthropic/claude-sonnet-4-5": one_call}}
    assert (await store.get(ALICE, job.id)).usage == shown.usage
    # the same call id again (a retried request): its first record, nothing added
    repeat = call("call-1", T0 + seconds(5), input_tokens=9_999, **PRICED)
    again, kept, new = await store.record_usage(ALICE, job.id, repeat)
    assert (kept, new, again.usage) == (first, False, shown.usage)
    second = call("call-2", T0 + seconds(2), "gpt-4.1-mini", "openai", output_tokens=5)
    after, stored, new = await store.record_usage(ADMIN, job.id, second, fresh=True)
    assert (stored, new) == (second, True)
    assert after.usage is not None
    assert (after.usage["calls"], after.usage["input_tokens"], after.usage["output_tokens"]) == (
        2,
        200,
        25,
    )
    assert after.usage["cost_usd"] is None  # a call of unknown cost: the total is unknown
    assert after.usage["by_model"]["anthropic/claude-sonnet-4-5"] == one_call
    assert (await store.get(ALICE, job.id)).usage == after.usage
    assert await store.list_usage(ALICE, job.id) == [first, second]
    assert (await store.get(ALICE, job.id)).status == JobStatus.RUNNING


async def test_record_usage_of_a_job_the_actor_may_not_see(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    for actor, job_id in ((BOB, job.id), (EVE, job.id), (ALICE, "job-unknown")):
        with pytest.raises(NotFoundError):
            await store.record_usage(actor, job_id, call("call-1"))
    assert await store.list_usage(ALICE, job.id) == []
    assert (await store.get(ALICE, job.id)).usage is None


async def test_record_usage_after_the_job_ended_is_late_and_noted(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    ended, _plan = await store.apply(
        ALICE, job.id, change(JobStatus.COMPLETED, StopReason.END_TURN, at=T0 + seconds(1))
    )
    before = await store.history(ALICE, job.id)
    late = call("call-late", T0 + seconds(3))
    shown, stored, new = await store.record_usage(ALICE, job.id, late)
    assert (stored, new) == (replace(late, late=True), True)
    assert shown.status == JobStatus.COMPLETED
    assert shown.usage is not None
    assert shown.usage["calls"] == 1
    assert await store.list_usage(ALICE, job.id) == [stored]
    [*same, note] = await store.history(ALICE, job.id)
    assert same == before
    assert (note.from_status, note.to_status, note.at, note.actor) == (
        JobStatus.COMPLETED,
        JobStatus.COMPLETED,
        T0 + seconds(3),
        "alice",
    )
    assert note.reason is not None
    assert "anthropic/claude-sonnet-4-5" in note.reason
    assert (await store.get(ALICE, job.id)).status == ended.status


async def test_list_usage_in_the_order_recorded(store: JobStore) -> None:
    job = await created(store, status=JobStatus.RUNNING)
    other = await created(store, status=JobStatus.RUNNING)
    later, earlier, tied = (
        call("call-b", T0 + seconds(2)),
        call("call-c", T0 + seconds(1)),
        call("call-a", T0 + seconds(2)),
    )
    for each in (later, earlier, tied):
        await store.record_usage(ALICE, job.id, each)
    await store.record_usage(ALICE, other.id, call("call-z", T0))
    assert await store.list_usage(ALICE, job.id) == [earlier, tied, later]
    assert await store.list_usage(ADMIN, job.id) == [earlier, tied, later]
    for actor in (BOB, EVE):
        with pytest.raises(NotFoundError):
            await store.list_usage(actor, job.id)
    with pytest.raises(NotFoundError):
        await store.list_usage(ALICE, "job-unknown")


async def test_has_usage_of_the_organization_in_the_window(store: JobStore) -> None:
    window = Window(T0, T0 + seconds(60), Bucket.HOUR)
    assert not await store.has_usage(ALICE.organization_id, window)
    job = await created(store, status=JobStatus.RUNNING)
    await store.record_usage(ALICE, job.id, call("call-a", T0 + seconds(30)))
    assert await store.has_usage(ALICE.organization_id, window)
    assert not await store.has_usage(EVE.organization_id, window)  # another organization
    later = Window(T0 + seconds(31), T0 + seconds(90), Bucket.HOUR)
    assert not await store.has_usage(ALICE.organization_id, later)  # outside the window


async def _calls_of_three_users(store: JobStore) -> None:
    """Calls of alice's agent job (made the day before), bob's job and eve's, in and out of
    the hour from T0.
    """
    alices = await created(store, status=JobStatus.RUNNING, at=T0 - HOUR * 24, job_type="agent")
    bobs = await created(store, BOB, status=JobStatus.RUNNING, job_type="job")
    eves = await created(store, EVE, status=JobStatus.RUNNING, job_type="agent")
    gpt: dict[str, Any] = {"model": "gpt-4.1-mini", "provider": "openai"}
    recorded = [
        (ALICE, alices.id, call("a-1", T0 + 10 * MINUTE, ttft_ns=300_000_000, **PRICED)),
        (ALICE, alices.id, call("a-2", T0 + 20 * MINUTE, output_tokens=40, **gpt)),
        (ALICE, alices.id, call("a-3", T0 + 2 * HOUR, **PRICED)),  # after the window
        (ALICE, alices.id, call("a-4", T0 - seconds(1), **PRICED)),  # before it
        (BOB, bobs.id, call("b-1", T0 + 30 * MINUTE, input_tokens=7, **PRICED)),
        (EVE, eves.id, call("e-1", T0 + 30 * MINUTE, **PRICED)),
    ]
    for actor, job_id, each in recorded:
        await store.record_usage(actor, job_id, each)


def _sums(figures: UsageFigures) -> dict[str, Any]:
    return {
        "total": figures.total.shown(),
        "by_model": {key: sums["calls"] for key, sums in figures.by_model.items()},
        "by_job_type": {key: sums["calls"] for key, sums in figures.by_job_type.items()},
        "points": [(start, sums["calls"]) for start, sums in figures.points()],
    }


async def test_usage_stats_of_the_actors_jobs_in_the_window(store: JobStore) -> None:
    await _calls_of_three_users(store)
    hour = Window(T0, T0 + HOUR, Bucket.HOUR)
    alices = _sums(await store.usage_stats(ALICE, JobFilter(), hour))
    assert alices == {
        "total": {
            "calls": 2,
            "input_tokens": 200,
            "output_tokens": 60,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.003,
            "unpriced_calls": 1,
        },
        "by_model": {"anthropic/claude-sonnet-4-5": 1, "openai/gpt-4.1-mini": 1},
        "by_job_type": {"agent": 2},
        "points": [(T0, 2)],
    }
    # an admin's whole hours come from the rollups, parts of hours from a scan: the same sums
    for window in (hour, Window(T0 + 5 * MINUTE, T0 + 50 * MINUTE, Bucket.HOUR)):
        organization = await store.usage_stats(ADMIN, JobFilter(), window)
        assert organization.total["calls"] == 3
        assert organization.total["input_tokens"] == 207
        assert organization.total["cost_pusd"] == 6_000_000_000
        assert _sums(organization)["by_job_type"] == {"agent": 2, "job": 1}
        assert _sums(organization)["by_model"] == {
            "anthropic/claude-sonnet-4-5": 2,
            "openai/gpt-4.1-mini": 1,
        }
        ttft = organization.histogram("anthropic/claude-sonnet-4-5", Facet.TTFT)
        assert ttft.count == 1  # 0.3 s: counted at every bound from 0.3 s on
        assert ttft.cumulative == tuple(int(bound >= 0.3) for bound in ttft.bounds)
    day = Window(T0 - HOUR * 24, T0 + HOUR * 24, Bucket.DAY)
    assert (await store.usage_stats(ALICE, JobFilter(), day)).total["calls"] == 4
    assert (await store.usage_stats(EVE, JobFilter(), hour)).total["calls"] == 1
    nobody = await store.usage_stats(Actor("org-c", "carol", is_admin=True), JobFilter(), hour)
    assert nobody.total["calls"] == 0
    assert nobody.by_model == {}


async def test_usage_stats_under_a_filter(store: JobStore) -> None:
    await _calls_of_three_users(store)
    hour = Window(T0, T0 + HOUR, Bucket.HOUR)
    for actor in (ALICE, ADMIN):  # a scan, and the rollups
        gpt = await store.usage_stats(actor, JobFilter(model="gpt-4.1-mini"), hour)
        assert _sums(gpt)["by_model"] == {"openai/gpt-4.1-mini": 1}  # that model's calls only
        assert gpt.total["output_tokens"] == 40
    agents = await store.usage_stats(ADMIN, JobFilter(job_type="agent"), hour)
    assert (agents.total["calls"], _sums(agents)["by_job_type"]) == (2, {"agent": 2})
    bobs = await store.usage_stats(ADMIN, JobFilter(user_id="bob"), hour)
    assert (bobs.total["calls"], bobs.total["input_tokens"]) == (1, 7)
    recent = JobFilter(created_after=T0 - HOUR)  # bob's job only: alice's is older
    assert (await store.usage_stats(ADMIN, recent, hour)).total["calls"] == 1
