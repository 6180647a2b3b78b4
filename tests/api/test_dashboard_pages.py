"""The dashboard pages of bulk actions, saved views, job search, deliveries, LLM batches and
the timeline, through HTTP with a signed-in session (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Actor, JobManager, Settings
from jobpulse.api import create_app
from tests.api.test_dashboard_http import signed_in
from tests.conftest import MakeKey
from tests.receiver import Receiver

ALICE = Actor("org-a", "alice")
BOB = Actor("org-a", "bob")


def text_of(page: str) -> str:
    """The words of a page, tags and runs of spaces gone."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def _form(http: httpx.AsyncClient, data: dict[str, object]) -> httpx.Response:
    return await http.post("/jobs/bulk", data=data | {"csrf": http.cookies["jobpulse_csrf"]})


async def test_bulk_cancel_of_every_matching_job_asks_then_says_what_it_did(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    running = [
        (await jobs.create_job(ALICE, job_type="etl", status="running")).id for _ in range(3)
    ]
    ended = await jobs.create_job(ALICE, job_type="etl", status="running")
    await jobs.update_job(ALICE, ended.id, status="completed")
    other = await jobs.create_job(ALICE, job_type="report", status="running")
    await signed_in(http, await make_key("org-a", "alice"))
    listing = await http.get("/jobs", params={"job_type": "etl"})
    assert 'form="bulk"' in listing.text
    assert 'name="query" value="job_type=etl"' in listing.text

    asked = await _form(http, {"action": "cancel", "scope": "matching", "query": "job_type=etl"})

    assert asked.status_code == 200
    words = text_of(asked.text)
    assert "Cancel 3 jobs? 3 of the 4 jobs matching are active; 1 already ended" in words
    assert "Yes, cancel 3 jobs" in words
    assert {(await jobs.get_job(ALICE, i)).status.value for i in running} == {"running"}

    done = await _form(
        http,
        {"action": "cancel", "scope": "matching", "query": "job_type=etl", "confirmed": "1"},
    )

    expected = "Cancelled 3 jobs. 1 job had already ended and was left as it was."
    assert expected in text_of(done.text)
    assert {(await jobs.get_job(ALICE, i)).status.value for i in running} == {"cancelled"}
    assert (await jobs.get_job(ALICE, other.id)).status.value == "running"
    history = await jobs.list_events(ALICE, running[0])
    assert history[-1].reason == "cancelled from the dashboard"


async def test_bulk_cancel_of_the_ticked_jobs_only(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    made = [(await jobs.create_job(ALICE, status="pending")).id for _ in range(4)]
    bobs = (await jobs.create_job(BOB, status="pending")).id
    await signed_in(http, await make_key("org-a", "alice"))
    ticked = [made[0], made[2], bobs]  # another member's job is not hers to cancel

    asked = await _form(http, {"action": "cancel", "scope": "selected", "job_id": ticked})
    assert "Cancel 2 jobs? 2 of the 2 jobs ticked are active." in text_of(asked.text)
    done = await _form(
        http, {"action": "cancel", "scope": "selected", "job_id": ticked, "confirmed": "1"}
    )

    assert "Cancelled 2 jobs." in text_of(done.text)
    statuses = [(await jobs.get_job(ALICE, i)).status.value for i in made]
    assert statuses == ["cancelled", "pending", "cancelled", "pending"]
    assert (await jobs.get_job(BOB, bobs)).status.value == "pending"
    nothing = await _form(http, {"action": "cancel", "scope": "selected"})
    assert nothing.status_code == 422
    assert "No job is ticked" in text_of(nothing.text)
    forged = await http.post("/jobs/bulk", data={"action": "cancel", "scope": "matching"})
    assert forged.status_code == 403


async def test_saved_views_are_per_user_and_shared_in_the_organization(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice, bob = await make_key("org-a", "alice"), await make_key("org-a", "bob")
    carol = await make_key("org-b", "carol")
    await signed_in(http, alice)
    token = http.cookies["jobpulse_csrf"]
    for name, query, shared in (
        ("Failed ETL", "job_type=etl&status=failed", "true"),
        ("Mine only", "active=active&order=oldest", ""),
    ):
        saved = await http.post(
            "/views", data={"name": name, "query": query, "shared": shared, "csrf": token}
        )
        assert saved.status_code == 303
    page = text_of((await http.get("/views")).text)
    assert "Failed ETL" in page
    assert "Mine only" in page
    bad = await http.post("/views", data={"name": "x", "query": "colour=red", "csrf": token})
    assert bad.status_code == 422
    assert "'colour' is not a filter" in bad.json()["error"]["message"]

    await signed_in(http, bob)
    seen_by_bob = (await http.get("/views")).text
    assert "Failed ETL" in seen_by_bob
    assert "Mine only" not in seen_by_bob
    assert 'href="/jobs?job_type=etl&amp;status=failed"' in seen_by_bob
    assert "Remove the view Failed ETL" not in seen_by_bob  # not bob's to remove
    await signed_in(http, carol)
    assert "Failed ETL" not in (await http.get("/views")).text


async def test_the_search_box_goes_straight_to_a_job(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    mine = await jobs.create_job(ALICE)
    bobs = await jobs.create_job(BOB)
    await signed_in(http, await make_key("org-a", "alice"))

    found = await http.get("/jobs/find", params={"id": f"  {mine.id} "})
    assert found.status_code == 303
    assert found.headers["location"] == f"/jobs/{mine.id}"
    hidden = await http.get("/jobs/find", params={"id": bobs.id})
    assert hidden.status_code == 404
    assert f"There is no job {bobs.id} that you can see." in text_of(hidden.text)


async def test_the_jobs_page_shows_ttft_user_and_source_and_sorts_oldest_first(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    first = await jobs.create_job(ALICE, status="running", metadata={"source_id": "crm-7"})
    await jobs.update_job(ALICE, first.id, ttft_ns=1_250_000_000)
    last = await jobs.create_job(ALICE)
    await signed_in(http, await make_key("org-a", "alice"))

    newest = (await http.get("/jobs")).text
    oldest = (await http.get("/jobs", params={"order": "oldest"})).text

    assert newest.index(last.id) < newest.index(first.id)
    assert oldest.index(first.id) < oldest.index(last.id)
    row = text_of(newest[newest.index(f'data-job="{first.id}"') :].split("</tr>")[0])
    assert "alice" in row
    assert "crm-7" in row
    assert "1.25 s" in row
    assert (await http.get("/jobs", params={"order": "sideways"})).status_code == 422


@pytest.fixture
async def delivering(database_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(database_url=database_url, webhook_allow_private=True)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def _arrived(receiver: Receiver, number: int) -> None:
    for _ in range(400):
        if len(receiver.received) >= number:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(receiver.received)} webhooks arrived, not {number}")


async def test_deliveries_across_jobs_filter_and_resend(
    delivering: FastAPI, make_key: MakeKey, receiver: Receiver
) -> None:
    jobs: JobManager = delivering.state.jobs
    done = await jobs.create_job(ALICE, status="running", callback_url=receiver.url)
    await jobs.update_job(ALICE, done.id, status="completed")
    failed = await jobs.create_job(ALICE, status="running", callback_url=receiver.url)
    await jobs.update_job(ALICE, failed.id, status="failed")
    bobs = await jobs.create_job(BOB, status="running", callback_url=receiver.url)
    await jobs.update_job(BOB, bobs.id, status="completed")
    await _arrived(receiver, 3)
    transport = httpx.ASGITransport(app=delivering)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as http:
        _key, secret = await delivering.state.keys.create(organization_id="org-a", user_id="alice")
        await signed_in(http, {"Authorization": f"Bearer {secret}"})
        for _ in range(100):  # the attempts are written just after the answers
            every = (await http.get("/deliveries")).text
            if every.count("HTTP 200") == 2:
                break
            await asyncio.sleep(0.05)
        assert done.id in every
        assert failed.id in every
        assert bobs.id not in every
        assert "127.0.0.1" in every
        only_failed = (await http.get("/deliveries", params={"event_type": "job.failed"})).text
        assert failed.id in only_failed
        assert done.id not in only_failed
        elsewhere = (await http.get("/deliveries", params={"host": "example.org"})).text
        assert "No delivery matches." in elsewhere
        delivered = (await http.get("/deliveries", params={"state": "delivered"})).text
        assert done.id in delivered

        resent = await http.post(
            "/deliveries/resend",
            data={
                "job_id": done.id,
                "query": "state=delivered",
                "csrf": http.cookies["jobpulse_csrf"],
            },
        )
        assert resent.status_code == 303
        page = (await http.get(resent.headers["location"])).text
        assert f"The callback of {done.id} will be sent again." in text_of(page)
    await _arrived(receiver, 4)
    assert receiver.received[-1].json["job_id"] == done.id


async def test_the_batches_page_shows_progress_expiry_and_results(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    now = jobs.now()
    expires = now.replace(microsecond=0) + timedelta(hours=3, minutes=5)
    metadata = {
        "provider": "openai",
        "batch_id": "batch_abc",
        "request_counts": {"completed": 30, "failed": 2, "total": 80},
        "progress": {"done": 32, "total": 80},
        "expires_at": expires.isoformat(),
        "output_file_id": "file-out-1",
    }
    await jobs.create_job(ALICE, job_type="llm_batch", status="running", metadata=metadata)
    await signed_in(http, await make_key("org-a", "alice"))

    page = (await http.get("/batches")).text

    words = text_of(page)
    assert "openai · batch_abc" in words
    assert 'max="80" value="32"' in page
    assert "32 of 80 (40%)" in words
    assert re.search(r"expires in 3 h (4|5) min", words)
    assert "output_file_id file-out-1" in words


async def test_the_timeline_puts_every_moment_on_one_axis(
    delivering: FastAPI, make_key: MakeKey, receiver: Receiver
) -> None:
    jobs: JobManager = delivering.state.jobs
    job = await jobs.create_job(ALICE, status="pending", callback_url=receiver.url)
    await jobs.update_job(ALICE, job.id, status="running")
    await jobs.record_first_token(ALICE, job.id)
    await jobs.heartbeat(ALICE, job.id)
    await jobs.record_step(ALICE, job.id, status="success", step_id="fetch")
    await jobs.update_job(ALICE, job.id, status="completed")
    await _arrived(receiver, 1)
    transport = httpx.ASGITransport(app=delivering)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as http:
        _key, secret = await delivering.state.keys.create(organization_id="org-a", user_id="alice")
        await signed_in(http, {"Authorization": f"Bearer {secret}"})
        for _ in range(100):
            page = (await http.get(f"/jobs/{job.id}/timeline")).text
            if 'data-kind="callback"' in page:
                break
            await asyncio.sleep(0.05)
        kinds = re.findall(r'data-kind="([a-z]+)"', page)
        assert kinds == [
            "created",
            "running",
            "token",
            "heartbeat",
            "step",
            "completed",
            "callback",
        ]
        assert "job.completed attempt 1: 200 (delivered)" in text_of(page)
        offsets = [float(x) for x in re.findall(r"left: ([0-9.]+)%", page)]
        assert offsets[0] == 0.0
        assert offsets[-1] == 100.0
        assert offsets == sorted(offsets)
        assert (await http.get(f"/jobs/{job.id}")).text.count(f"/jobs/{job.id}/timeline") == 1


async def test_the_jobs_page_sorts_by_duration_and_ttft_page_by_page(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    jobs: JobManager = app.state.jobs
    durations = [7, 3, 30, 3, 12] * 6  # ties broken by id
    made = []
    for number, seconds in enumerate(durations):
        job = await jobs.create_job(ALICE, status="running")
        await jobs.update_job(
            ALICE, job.id, total_duration_ns=seconds * 10**9, ttft_ns=(number + 1) * 10**6
        )
        made.append((seconds * 10**9, job.id))
    await jobs.create_job(ALICE)  # no duration: not in the sorted pages
    await jobs.create_job(BOB, status="running")
    await signed_in(http, await make_key("org-a", "alice"))

    shown: list[str] = []
    address = "/jobs?order=duration"
    while address:
        page = (await http.get(address)).text
        shown += re.findall(r'<tr data-job="([^"]+)"', page)
        found = re.search(r'href="(/jobs\?[^"]*cursor=[^"]+)"', page)
        address = html.unescape(found[1]) if found else ""

    assert shown == [job_id for _value, job_id in sorted(made, reverse=True)]
    by_ttft = re.findall(r'<tr data-job="([^"]+)"', (await http.get("/jobs?order=ttft")).text)
    assert by_ttft == [job_id for _value, job_id in made[::-1][:25]]
    bad = await http.get("/jobs", params={"order": "duration", "cursor": "soon"})
    assert bad.status_code == 400
