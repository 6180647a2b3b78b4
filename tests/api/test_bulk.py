"""Bulk actions over HTTP (DESIGN §10): cancel, and re-send callbacks of, every job a filter
matches, on SQLite and PostgreSQL, with the tenant rules of the listing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Actor, JobManager, Settings
from jobpulse.api import create_app
from jobpulse.bulk.actions import BulkActions
from jobpulse.client import AsyncJobPulse
from jobpulse.listing import JobFilter
from tests.conftest import MakeKey
from tests.receiver import Receiver

ALICE = Actor("org-a", "alice")
BOB = Actor("org-a", "bob")
CAROL = Actor("org-b", "carol")
#: The status each job is brought to, in turn.
CYCLE = ("created", "pending", "running", "completed", "failed", "running", "pending")


async def _populate(jobs: JobManager, actor: Actor, job_type: str, number: int) -> dict[str, str]:
    """`number` jobs of `actor`, their statuses cycling through CYCLE; id → status."""
    made: dict[str, str] = {}
    for index in range(number):
        wanted = CYCLE[index % len(CYCLE)]
        initial = wanted if wanted in ("created", "pending", "running") else "running"
        job = await jobs.create_job(
            actor, job_type=job_type, status=initial, metadata={"team": f"t{index % 2}"}
        )
        if wanted != initial:
            await jobs.update_job(actor, job.id, status=wanted)
        made[job.id] = wanted
    return made


async def _statuses(jobs: JobManager, actor: Actor, ids: dict[str, str]) -> dict[str, str]:
    return {job_id: (await jobs.get_job(actor, job_id)).status.value for job_id in ids}


def _cancelled(before: dict[str, str], active: set[str]) -> dict[str, str]:
    return {
        job_id: "cancelled" if job_id in active else status for job_id, status in before.items()
    }


ACTIVE = frozenset({"created", "pending", "running"})


async def test_bulk_cancel_changes_exactly_the_matching_active_jobs(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    matching = await _populate(jobs, ALICE, "etl", 420)  # three batches and a bit
    other_type = await _populate(jobs, ALICE, "report", 40)
    other_user = await _populate(jobs, BOB, "etl", 25)
    other_org = await _populate(jobs, CAROL, "etl", 15)
    headers = await make_key("org-a", "alice")

    answer = await http.post(
        "/v1/jobs/cancel", json={"filter": {"job_type": "etl"}}, headers=headers
    )

    assert answer.status_code == 200, answer.text
    active = {job_id for job_id, status in matching.items() if status in ACTIVE}
    assert answer.json() == {
        "matched": 420,
        "changed": len(active),
        "skipped": 420 - len(active),
    }
    assert await _statuses(jobs, ALICE, matching) == _cancelled(matching, active)
    assert await _statuses(jobs, ALICE, other_type) == other_type
    assert await _statuses(jobs, BOB, other_user) == other_user
    assert await _statuses(jobs, CAROL, other_org) == other_org
    some_active, some_ended = sorted(active)[0], sorted(set(matching) - active)[0]
    history = (await http.get(f"/v1/jobs/{some_active}/events", headers=headers)).json()
    assert history[-1]["to_status"] == "cancelled"
    assert history[-1]["stop_reason"] == "cancelled"
    assert history[-1]["reason"] == "cancelled in bulk"
    assert history[-1]["actor"] == "alice"
    ended_history = (await http.get(f"/v1/jobs/{some_ended}/events", headers=headers)).json()
    assert all(event["applied"] for event in ended_history), "a skipped job gets no attempt"


async def test_bulk_cancel_of_filters_combined(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    made = await _populate(jobs, ALICE, "etl", 60)
    headers = await make_key("org-a", "alice")
    body = {"filter": {"status": ["pending", "completed"], "metadata.team": "t0"}}

    answer = await http.post("/v1/jobs/cancel", json=body, headers=headers)

    chosen = [
        job_id
        for index, (job_id, status) in enumerate(made.items())
        if status in ("pending", "completed") and index % 2 == 0
    ]
    pending = {job_id for job_id in chosen if made[job_id] == "pending"}
    assert answer.json() == {
        "matched": len(chosen),
        "changed": len(pending),
        "skipped": len(chosen) - len(pending),
    }
    assert await _statuses(jobs, ALICE, made) == _cancelled(made, pending)


async def test_dry_run_counts_what_the_run_then_does_and_changes_nothing(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    made = await _populate(jobs, ALICE, "etl", 30)
    headers = await make_key("org-a", "alice")
    body = {"filter": {"job_type": "etl"}, "dry_run": True}

    counted = await http.post("/v1/jobs/cancel", json=body, headers=headers)

    active = sum(status in ACTIVE for status in made.values())
    assert counted.json() == {"matched": 30, "changed": active, "skipped": 30 - active}
    assert await _statuses(jobs, ALICE, made) == made
    done = await http.post("/v1/jobs/cancel", json=body | {"dry_run": False}, headers=headers)
    assert done.json() == counted.json()
    again = await http.post("/v1/jobs/cancel", json=body | {"dry_run": False}, headers=headers)
    assert again.json() == {"matched": 30, "changed": 0, "skipped": 30}


async def test_members_act_on_their_own_jobs_admins_on_their_organization(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    alices = await _populate(jobs, ALICE, "etl", 14)
    bobs = await _populate(jobs, BOB, "etl", 14)
    carols = await _populate(jobs, CAROL, "etl", 14)
    member = await make_key("org-a", "alice")
    admin = await make_key("org-a", "root", admin=True)
    everything: dict[str, object] = {"filter": {}}

    as_member = await http.post(
        "/v1/jobs/cancel", json={"filter": {"user_id": "bob"}}, headers=member
    )
    assert as_member.json() == {"matched": 0, "changed": 0, "skipped": 0}
    assert await _statuses(jobs, BOB, bobs) == bobs

    by_admin = await http.post(
        "/v1/jobs/cancel", json={"filter": {"user_id": "bob"}}, headers=admin
    )
    bobs_active = {job_id for job_id, status in bobs.items() if status in ACTIVE}
    assert by_admin.json()["changed"] == len(bobs_active)
    assert await _statuses(jobs, BOB, bobs) == _cancelled(bobs, bobs_active)
    assert await _statuses(jobs, ALICE, alices) == alices

    rest = await http.post("/v1/jobs/cancel", json=everything, headers=admin)
    alices_active = {job_id for job_id, status in alices.items() if status in ACTIVE}
    assert rest.json() == {
        "matched": 28,
        "changed": len(alices_active),
        "skipped": 28 - len(alices_active),
    }
    assert await _statuses(jobs, CAROL, carols) == carols


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"filter": {"status": "sleeping"}}, "status"),
        ({"filter": {"colour": "red"}}, "colour"),
        ({"filter": {"background": "perhaps"}}, "background"),
        ({"filter": {"created_after": "yesterday"}}, "created_after"),
        ({"filter": {"metadata": {"bad key!": "x"}}}, "metadata filter key"),
        (
            {
                "filter": {
                    "created_after": "2026-02-01T00:00Z",
                    "created_before": "2026-01-01T00:00Z",
                }
            },
            "created_after is later",
        ),
        ({"dry_run": True}, "filter"),
        ({"filter": {}, "dry_run": "maybe"}, "dry_run"),
        ([1, 2], "body"),
    ],
)
async def test_a_bad_filter_is_refused_and_changes_nothing(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey, body: object, where: str
) -> None:
    jobs: JobManager = app.state.jobs
    made = await _populate(jobs, ALICE, "etl", 7)
    headers = await make_key("org-a", "alice")
    for path in ("/v1/jobs/cancel", "/v1/jobs/callbacks/retry"):
        answer = await http.post(path, json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "validation_error"
        assert where in error["message"]
    assert await _statuses(jobs, ALICE, made) == made


async def test_bulk_actions_need_a_key(http: httpx.AsyncClient) -> None:
    answer = await http.post("/v1/jobs/cancel", json={"filter": {}})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"


async def _wait_for(receiver: Receiver, number: int) -> None:
    """Until the receiver got `number` requests (or 20 s)."""
    for _ in range(400):
        if len(receiver.received) >= number:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(receiver.received)} webhooks arrived, not {number}")


@pytest.fixture
async def delivering(database_url: str) -> AsyncIterator[FastAPI]:
    """An app whose webhooks may go to a receiver on loopback."""
    settings = Settings(database_url=database_url, webhook_allow_private=True)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_bulk_retry_resends_the_callbacks_of_ended_matching_jobs(
    delivering: FastAPI, receiver: Receiver
) -> None:
    jobs: JobManager = delivering.state.jobs
    url = receiver.url
    ended = []
    for status in ("completed", "failed", "cancelled"):
        job = await jobs.create_job(ALICE, job_type="etl", status="running", callback_url=url)
        ended.append((await jobs.update_job(ALICE, job.id, status=status)).id)
    await jobs.create_job(ALICE, job_type="etl", status="running", callback_url=url)  # active
    quiet = await jobs.create_job(ALICE, job_type="etl", status="running")
    await jobs.update_job(ALICE, quiet.id, status="completed")  # no callback
    await jobs.create_job(ALICE, job_type="other", status="running", callback_url=url)
    await _wait_for(receiver, 3)
    first = Counter(request.headers["webhook-id"] for request in receiver.received)
    _key, secret = await delivering.state.keys.create(organization_id="org-a", user_id="alice")
    transport = httpx.ASGITransport(app=delivering)

    async with AsyncJobPulse("http://jobpulse.test", secret, transport=transport) as client:
        counted = await client.retry_callbacks(job_type="etl", dry_run=True)
        done = await client.retry_callbacks(job_type="etl")

    assert (counted.matched, counted.changed, counted.skipped) == (5, 3, 2)
    assert (done.matched, done.changed, done.skipped) == (5, 3, 2)
    await _wait_for(receiver, 6)
    again = Counter(request.headers["webhook-id"] for request in receiver.received)
    assert set(again) == set(first)
    assert all(number == 2 for number in again.values())
    bodies = {request.json["job_id"] for request in receiver.received}
    assert bodies == set(ended)


async def test_the_sdk_cancels_by_filter(app: FastAPI) -> None:
    jobs: JobManager = app.state.jobs
    made = await _populate(jobs, ALICE, "etl", 21)
    _key, secret = await app.state.keys.create(organization_id="org-a", user_id="alice")
    transport = httpx.ASGITransport(app=app)
    active = {job_id for job_id, status in made.items() if status in ACTIVE}
    pending = {job_id for job_id in active if made[job_id] == "pending"}

    async with AsyncJobPulse("http://jobpulse.test", secret, transport=transport) as client:
        counted = await client.cancel_jobs(status=["pending"], dry_run=True)
        done = await client.cancel_jobs(status=["pending"], reason="pipeline paused")

    assert (counted.matched, counted.changed) == (len(pending), len(pending))
    assert (done.matched, done.changed, done.skipped) == (len(pending), len(pending), 0)
    assert await _statuses(jobs, ALICE, made) == _cancelled(made, pending)
    history = await jobs.list_events(ALICE, sorted(pending)[0])
    assert history[-1].reason == "pipeline paused"


async def test_small_batches_walk_the_whole_filter(manager: JobManager) -> None:
    """With batches of 3 (many steps, the keyset cursor between each), every matching active
    job is cancelled once and nothing else.
    """
    made = await _populate(manager, ALICE, "etl", 50)
    actions = BulkActions(manager, batch_size=3)

    result = await actions.cancel(ALICE, JobFilter(job_type="etl"))

    active = {job_id for job_id, status in made.items() if status in ACTIVE}
    assert (result.matched, result.changed, result.skipped) == (50, len(active), 50 - len(active))
    assert await _statuses(manager, ALICE, made) == _cancelled(made, active)
