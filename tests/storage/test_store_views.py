"""Conformance: saved views (each user's, or shared in the organization), the jobs page
sorted slowest first, and the deliveries page (webhooks across the jobs one may see).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from jobpulse.domain import Actor
from jobpulse.errors import NotFoundError
from jobpulse.listing import JobFilter
from jobpulse.storage.outbox import Attempt, Claimed
from jobpulse.storage.store import JobStore
from jobpulse.views.rules import SavedView
from tests.storage.conftest import (
    ADMIN,
    ALICE,
    BOB,
    EVE,
    HOOK,
    T0,
    created,
    ended_with_callback,
    seconds,
)

LEASE = seconds(30)


def view(
    actor: Actor = ALICE,
    name: str = "failing",
    query: str = "status=failed",
    shared: bool = False,
    at: datetime = T0,
) -> SavedView:
    return SavedView(
        id=f"view-{uuid.uuid4()}",
        organization_id=actor.organization_id,
        user_id=actor.user_id,
        name=name,
        query=query,
        shared=shared,
        created_at=at,
    )


async def test_save_view_stores_it_and_replaces_the_owners_one_of_that_name(
    store: JobStore,
) -> None:
    first = view()
    assert await store.save_view(first) == first
    assert await store.get_view(ALICE, first.id) == first
    again = view(query="status=failed&job_type=agent", shared=True, at=T0 + seconds(60))
    replaced = await store.save_view(again)
    assert replaced == SavedView(
        id=first.id,
        organization_id="org-a",
        user_id="alice",
        name="failing",
        query="status=failed&job_type=agent",
        shared=True,
        created_at=T0,
    )
    assert await store.list_views(ALICE) == [replaced]
    with pytest.raises(NotFoundError):
        await store.get_view(ALICE, again.id)  # not stored under the new id
    bobs = view(BOB)  # another owner's view of the same name is a view of its own
    assert await store.save_view(bobs) == bobs
    assert await store.get_view(BOB, bobs.id) == bobs
    assert await store.get_view(ALICE, first.id) == replaced


async def test_list_views_own_and_shared_by_name(store: JobStore) -> None:
    mine_b = await store.save_view(view(name="b-mine"))
    mine_a = await store.save_view(view(name="a-mine", shared=True))
    bobs_shared = await store.save_view(view(BOB, name="c-shared", shared=True))
    bobs_own = await store.save_view(view(BOB, name="d-private"))
    await store.save_view(view(EVE, name="0-elsewhere", shared=True))
    assert await store.list_views(ALICE) == [mine_a, mine_b, bobs_shared]
    assert await store.list_views(BOB) == [mine_a, bobs_shared, bobs_own]
    assert await store.list_views(ADMIN) == [mine_a, bobs_shared]  # shared ones only
    assert [v.name for v in await store.list_views(EVE)] == ["0-elsewhere"]
    assert await store.list_views(Actor("org-c", "carol")) == []


async def test_get_view_the_actor_may_see(store: JobStore) -> None:
    private = await store.save_view(view(name="private"))
    shared = await store.save_view(view(name="shared", shared=True))
    assert await store.get_view(ALICE, private.id) == private
    assert await store.get_view(BOB, shared.id) == shared
    for actor, view_id in (
        (BOB, private.id),
        (ADMIN, private.id),
        (EVE, shared.id),
        (ALICE, "view-unknown"),
    ):
        with pytest.raises(NotFoundError):
            await store.get_view(actor, view_id)


async def test_delete_view_by_its_owner_or_an_admin(store: JobStore) -> None:
    mine = await store.save_view(view(name="mine", shared=True))
    other = await store.save_view(view(name="other", shared=True))
    for actor in (BOB, EVE):  # sees it (BOB) or not (EVE): may not remove it
        with pytest.raises(NotFoundError):
            await store.delete_view(actor, mine.id)
    assert await store.get_view(ALICE, mine.id) == mine
    await store.delete_view(ALICE, mine.id)
    await store.delete_view(ADMIN, other.id)
    assert await store.list_views(ALICE) == []
    with pytest.raises(NotFoundError):
        await store.get_view(ALICE, mine.id)
    with pytest.raises(NotFoundError):
        await store.delete_view(ALICE, mine.id)  # once


async def test_delete_view_an_admin_removes_a_members_private_view(store: JobStore) -> None:
    private = await store.save_view(view(name="private", shared=False))
    with pytest.raises(NotFoundError):
        await store.get_view(ADMIN, private.id)  # the admin does not see it in its lists
    await store.delete_view(ADMIN, private.id)
    with pytest.raises(NotFoundError):
        await store.get_view(ALICE, private.id)


async def test_list_slowest_largest_first_after_the_cursor(store: JobStore) -> None:
    durations = [5_000, 9_000, None, 7_000, 9_000, 1_000]
    jobs = [
        await created(store, at=T0 + seconds(n), total_duration_ns=ns, ttft_ns=ns and ns // 10)
        for n, ns in enumerate(durations)
    ]
    await created(store, BOB, total_duration_ns=99_000)  # not alice's
    await created(store, EVE, total_duration_ns=99_000)
    tied = sorted((jobs[1], jobs[4]), key=lambda job: job.id, reverse=True)
    order = [*tied, jobs[3], jobs[0], jobs[5]]
    everything = await store.list_slowest(ALICE, JobFilter(), "duration", None, 10)
    assert [job.id for job in everything] == [job.id for job in order]
    assert everything[0] == tied[0]  # the stored job
    page = await store.list_slowest(ALICE, JobFilter(), "duration", None, 2)
    assert [job.id for job in page] == [job.id for job in order[:2]]
    cursor = (9_000, page[0].id)  # between two jobs of the same duration
    after = await store.list_slowest(ALICE, JobFilter(), "duration", cursor, 2)
    assert [job.id for job in after] == [order[1].id, order[2].id]
    last = (7_000, jobs[3].id)
    rest = await store.list_slowest(ALICE, JobFilter(), "duration", last, 10)
    assert [job.id for job in rest] == [jobs[0].id, jobs[5].id]
    by_ttft = await store.list_slowest(ALICE, JobFilter(), "ttft", None, 10)
    assert [job.ttft_ns for job in by_ttft] == [900, 900, 700, 500, 100]
    filtered = JobFilter(created_after=T0 + seconds(2))
    assert [job.id for job in await store.list_slowest(ALICE, filtered, "duration", None, 10)] == [
        jobs[4].id,
        jobs[3].id,
        jobs[5].id,
    ]
    admin = await store.list_slowest(ADMIN, JobFilter(), "duration", None, 10)
    assert [job.total_duration_ns for job in admin] == [99_000, 9_000, 9_000, 7_000, 5_000, 1_000]
    assert [job.organization_id for job in admin] == ["org-a"] * 6


def attempt(
    message: Claimed, at: datetime, code: int | None, error: str | None, retry_at: datetime | None
) -> Attempt:
    state = "delivered" if code == 200 else ("retrying" if retry_at else "failed")
    return Attempt(message.attempts + 1, at, code, error, 12.5, state, retry_at)


async def test_list_deliveries_newest_first_with_the_last_attempt(store: JobStore) -> None:
    first = await ended_with_callback(store)
    now = T0 + seconds(20)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert message.job_id == first.id
    await store.record_attempts(
        [(message, attempt(message, now, 503, None, now + seconds(5)), None)]
    )
    retry = now + seconds(5)
    [again] = await store.claim_outbox(retry, retry + LEASE, 10, None)
    assert again.job_id == first.id
    await store.record_attempts([(again, attempt(again, retry, None, "refused", None), None)])
    second = await ended_with_callback(store, at=T0 + seconds(10), url="https://b.example.com/h")
    listed = await store.list_deliveries(ALICE, None, None, None, 10)
    assert [row["job_id"] for row in listed] == [second.id, first.id]
    newest, oldest = listed
    assert (newest["event_type"], newest["url"], newest["state"]) == (
        "job.failed",
        "https://b.example.com/h",
        "pending",
    )
    assert (newest["attempts"], newest["status_code"], newest["attempted_at"]) == (0, None, None)
    assert (oldest["webhook_id"], oldest["url"], oldest["state"]) == (
        message.webhook_id,
        HOOK,
        "failed",
    )
    assert (oldest["attempts"], oldest["status_code"], oldest["error"]) == (2, None, "refused")
    assert oldest["attempted_at"] == retry
    assert [row["job_id"] for row in await store.list_deliveries(ALICE, None, None, None, 1)] == [
        second.id
    ]


async def test_list_deliveries_of_the_jobs_the_actor_sees_under_filters(store: JobStore) -> None:
    mine = await ended_with_callback(store)
    other = await ended_with_callback(store, url="https://other.example.com/x")
    ported = await ended_with_callback(store, url="https://port.example.com:8443")
    bobs = await ended_with_callback(store, url="https://b.example.com/", actor=BOB)
    eves = await ended_with_callback(store, actor=EVE)

    def ids(rows: list[dict[str, object]]) -> set[object]:
        return {row["job_id"] for row in rows}

    assert ids(await store.list_deliveries(ALICE, None, None, None, 10)) == {
        mine.id,
        other.id,
        ported.id,
    }
    assert ids(await store.list_deliveries(ADMIN, None, None, None, 10)) == {
        mine.id,
        other.id,
        ported.id,
        bobs.id,
    }
    assert ids(await store.list_deliveries(BOB, None, None, None, 10)) == {bobs.id}
    assert ids(await store.list_deliveries(EVE, None, None, None, 10)) == {eves.id}
    hosted = await store.list_deliveries(ALICE, None, None, "other.example.com", 10)
    assert ids(hosted) == {other.id}
    assert await store.list_deliveries(ALICE, None, None, "example", 10) == []
    assert ids(await store.list_deliveries(ALICE, None, None, "OTHER.Example.com", 10)) == {
        other.id
    }
    assert await store.list_deliveries(ALICE, None, None, "other.example", 10) == []  # a prefix
    assert await store.list_deliveries(ALICE, None, None, "%", 10) == []  # no wildcard
    assert await store.list_deliveries(ALICE, None, None, "hooks_example.com", 10) == []
    assert ids(await store.list_deliveries(ALICE, "pending", "job.failed", None, 10)) == {
        mine.id,
        other.id,
        ported.id,
    }
    ported_only = await store.list_deliveries(ALICE, None, None, "port.example.com", 10)
    assert ids(ported_only) == {ported.id}
    assert await store.list_deliveries(ALICE, "delivered", None, None, 10) == []
    assert await store.list_deliveries(ALICE, None, "job.completed", None, 10) == []
