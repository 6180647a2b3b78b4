"""Conformance: bulk actions a step at a time (cancel, re-send callbacks), walking the jobs
an actor may see under a filter in (created_at, id) order, and counting what a re-send
would send.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from jobpulse.domain import Job, JobStatus, Plan, StopReason
from jobpulse.listing import JobFilter
from jobpulse.storage.bulk import Cursor
from jobpulse.storage.outbox import Attempt
from jobpulse.storage.store import JobStore, Planner
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
    seconds,
)

LEASE = seconds(30)
LATER = T0 + seconds(60)


def cancel(at: datetime = LATER, by: str = "alice") -> Planner:
    """A cancel that queues the job's callback with the change (as bulk actions do)."""
    planner = change(JobStatus.CANCELLED, StopReason.CANCELLED, at=at, by=by)

    def with_callback(job: Job) -> Plan:
        plan = planner(job)
        if job.callback_url is None:
            return plan
        message = payload.callback(replace(job, **plan.values), at)
        return replace(plan, outbox=(message,))

    return with_callback


def cursor_of(job: Job) -> Cursor:
    return (job.created_at, job.id)


async def test_cancel_step_cancels_the_active_jobs_of_the_next_ones(store: JobStore) -> None:
    first = await created(store, at=T0)
    running = await created(store, status=JobStatus.RUNNING, at=T0 + seconds(1), callback_url=HOOK)
    ended = await ended_with_callback(store, at=T0 + seconds(2))
    pending = await created(store, status=JobStatus.PENDING, at=T0 + seconds(3))
    bobs = await created(store, BOB, status=JobStatus.RUNNING, at=T0 + seconds(1))
    eves = await created(store, EVE, at=T0)

    step = await store.cancel_step(ALICE, JobFilter(), None, 2, cancel())
    assert step.matched == 2
    assert step.cursor == cursor_of(running)
    assert [(job.id, job.status) for job, _plan in step.changed] == [
        (first.id, JobStatus.CANCELLED),
        (running.id, JobStatus.CANCELLED),
    ]
    assert all(plan.event is not None for _job, plan in step.changed)
    step = await store.cancel_step(ALICE, JobFilter(), step.cursor, 2, cancel())
    assert step.matched == 2  # the ended job is seen, and left as it was
    assert [job.id for job, _plan in step.changed] == [pending.id]
    assert step.cursor is not None
    step = await store.cancel_step(ALICE, JobFilter(), step.cursor, 2, cancel())
    assert (step.matched, step.changed, step.cursor) == (0, [], None)

    for job in (first, running, pending):
        stored = await store.get(ALICE, job.id)
        assert (stored.status, stored.stop_reason, stored.completed_at) == (
            JobStatus.CANCELLED,
            StopReason.CANCELLED,
            LATER,
        )
        assert (await store.history(ALICE, job.id))[-1].to_status == JobStatus.CANCELLED
    assert (await store.get(ALICE, ended.id)).status == JobStatus.FAILED
    assert (await store.get(BOB, bobs.id)).status == JobStatus.RUNNING  # not alice's
    assert (await store.get(EVE, eves.id)).status == JobStatus.CREATED
    # the cancel's callback was queued with it, in the same write
    queued = await store.claim_outbox(LATER, LATER + LEASE, 10, None)
    assert sorted((m.job_id, m.event_type) for m in queued) == sorted(
        [(ended.id, "job.failed"), (running.id, "job.cancelled")]
    )


async def test_cancel_step_under_a_filter_to_the_end(store: JobStore) -> None:
    agents = [await created(store, at=T0 + seconds(n), job_type="agent") for n in range(3)]
    other = await created(store, at=T0, job_type="job")
    bobs = await created(store, BOB, at=T0, job_type="agent")
    step = await store.cancel_step(ADMIN, JobFilter(job_type="agent"), None, 10, cancel(by="root"))
    assert (step.matched, step.cursor) == (4, None)  # fewer than asked for: at the end
    assert {job.id for job, _plan in step.changed} == {bobs.id, *(job.id for job in agents)}
    assert (await store.get(ALICE, other.id)).status == JobStatus.CREATED
    assert (await store.get(BOB, bobs.id)).status == JobStatus.CANCELLED
    step = await store.cancel_step(EVE, JobFilter(), None, 10, cancel(by="eve"))
    assert (step.matched, step.changed, step.cursor) == (0, [], None)


def delivered(message_attempts: int, at: datetime) -> Attempt:
    return Attempt(message_attempts + 1, at, 200, None, 3.0, "delivered", None)


async def test_resend_step_makes_the_callbacks_of_ended_jobs_due_again(store: JobStore) -> None:
    sent = await ended_with_callback(store, at=T0)
    running = await created(store, status=JobStatus.RUNNING, at=T0 + seconds(1), callback_url=HOOK)
    no_callback = await created(store, at=T0 + seconds(2))
    await store.apply(
        ALICE, no_callback.id, change(JobStatus.CANCELLED, StopReason.CANCELLED, at=T0)
    )
    bobs = await ended_with_callback(store, at=T0 + seconds(3), actor=BOB)
    now = T0 + seconds(10)
    claimed = await store.claim_outbox(now, now + LEASE, 10, None)
    await store.record_attempts([(m, delivered(m.attempts, now), None) for m in claimed])
    assert {m.job_id for m in claimed} == {sent.id, bobs.id}
    assert await store.claim_outbox(LATER, LATER + LEASE, 10, None) == []

    step = await store.resend_step(ALICE, JobFilter(), None, 2, LATER)
    assert (step.matched, step.resent, step.cursor) == (2, 1, cursor_of(running))
    step = await store.resend_step(ALICE, JobFilter(), step.cursor, 2, LATER)
    assert (step.matched, step.resent, step.cursor) == (1, 0, None)
    [again] = await store.claim_outbox(LATER, LATER + LEASE, 10, None)
    first = next(m for m in claimed if m.job_id == sent.id)
    assert (again.job_id, again.webhook_id, again.url) == (sent.id, first.webhook_id, HOOK)
    assert (await store.get(ALICE, running.id)).status == JobStatus.RUNNING

    step = await store.resend_step(ADMIN, JobFilter(user_id="bob"), None, 10, LATER)
    assert (step.matched, step.resent, step.cursor) == (1, 1, None)
    [bobs_again] = await store.claim_outbox(LATER, LATER + LEASE, 10, None)
    assert bobs_again.job_id == bobs.id
    step = await store.resend_step(EVE, JobFilter(), None, 10, LATER)
    assert (step.matched, step.resent, step.cursor) == (0, 0, None)


async def test_count_resendable_of_the_actors_jobs(store: JobStore) -> None:
    assert await store.count_resendable(ALICE, JobFilter()) == (0, 0)
    await ended_with_callback(store, at=T0)
    await ended_with_callback(store, at=T0 + seconds(1), job_type="agent")
    await created(store, status=JobStatus.RUNNING, callback_url=HOOK)  # not ended
    plain = await created(store)
    await store.apply(ALICE, plain.id, change(JobStatus.CANCELLED, StopReason.CANCELLED, at=T0))
    await ended_with_callback(store, actor=BOB)
    await ended_with_callback(store, actor=EVE)
    assert await store.count_resendable(ALICE, JobFilter()) == (4, 2)
    assert await store.count_resendable(ALICE, JobFilter(job_type="agent")) == (1, 1)
    ended = JobFilter(statuses=frozenset({JobStatus.CANCELLED}))
    assert await store.count_resendable(ALICE, ended) == (1, 0)
    assert await store.count_resendable(ADMIN, JobFilter()) == (5, 3)
    assert await store.count_resendable(EVE, JobFilter()) == (1, 1)
    # what it counts is what a re-send sends
    step = await store.resend_step(ADMIN, JobFilter(), None, 10, LATER)
    assert (step.matched, step.resent) == (5, 3)
