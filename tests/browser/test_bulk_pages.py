"""Bulk actions, saved views, the job search, deliveries, LLM batches and a job's timeline in
headless Chromium against a real `jobpulse serve` (SQLite and PostgreSQL), each page checked
with axe-core (no serious or critical finding).
"""

from __future__ import annotations

import time

from playwright.sync_api import Browser, expect

from tests.browser import test_dashboard as dashboard
from tests.browser.test_dashboard import accessible, api, sign_in
from tests.e2e.conftest import Server
from tests.receiver import Receiver

#: The fixtures of the dashboard's browser test: a served database, and Chromium.
server = dashboard.server
browser = dashboard.browser


def test_an_operator_cancels_a_filter_saves_a_view_and_follows_deliveries(
    server: Server, receiver: Receiver, browser: Browser
) -> None:
    with api(server) as http:
        active = [
            http.post("/v1/jobs", json={"job_type": "etl", "status": status}).json()["id"]
            for status in ("created", "pending", "running", "running")
        ]
        ended = []
        for stop in ("end_turn", "error"):
            job = http.post("/v1/jobs", json={"job_type": "etl", "status": "running"}).json()
            http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": stop})
            ended.append(job["id"])
        other = http.post("/v1/jobs", json={"job_type": "report", "status": "running"}).json()
        hooked = http.post(
            "/v1/jobs",
            json={"job_type": "mail", "status": "running", "callback_url": receiver.url},
        ).json()
        http.post(f"/v1/jobs/{hooked['id']}/first-token")
        http.post(f"/v1/jobs/{hooked['id']}/steps", json={"status": "success", "step_id": "send"})
        http.patch(f"/v1/jobs/{hooked['id']}", json={"stop_reason": "end_turn"})
        assert receiver.got_one.wait(10)
    page = browser.new_page()
    sign_in(page, server, server.admin_key)

    # Every job the filter matches: the count first, then the result, in words.
    page.goto(f"{server.url}/jobs?job_type=etl")
    expect(page.locator("tr[data-job]")).to_have_count(6)
    expect(page.get_by_role("columnheader", name="TTFT")).to_be_visible()
    page.get_by_label("every job matching the filters").check()
    page.get_by_role("button", name="Cancel…").click()
    expect(page.locator(".question")).to_have_text(
        "Cancel 4 jobs? 4 of the 6 jobs matching are active; 2 already ended and will be "
        "left as they are."
    )
    accessible(page, "bulk-confirm")
    page.get_by_role("button", name="Yes, cancel 4 jobs").click()
    expect(page.get_by_role("status")).to_have_text(
        "Cancelled 4 jobs. 2 jobs had already ended and were left as they were."
    )
    accessible(page, "bulk-result")
    with api(server) as http:
        assert {http.get(f"/v1/jobs/{i}").json()["status"] for i in active} == {"cancelled"}
        assert http.get(f"/v1/jobs/{other['id']}").json()["status"] == "running"
        assert [http.get(f"/v1/jobs/{i}").json()["status"] for i in ended] == [
            "completed",
            "failed",
        ]

    # A named view, shared with the organization, brings the filters back.
    page.get_by_role("link", name="Back to the jobs").click()
    page.get_by_label("Save these filters as").fill("ETL runs")
    page.get_by_label("shared with my organization").check()
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_role("status")).to_have_text("Saved the view “ETL runs”.")
    accessible(page, "views")
    page.get_by_role("link", name="ETL runs").click()
    expect(page).to_have_url(f"{server.url}/jobs?job_type=etl")
    expect(page.locator("tr[data-job]")).to_have_count(6)

    # The search box goes straight to a job; its timeline shows every moment.
    page.get_by_label("Job id").fill(hooked["id"])
    page.get_by_role("button", name="Go to job").click()
    expect(page.get_by_role("heading", name=f"Job {hooked['id']}")).to_be_visible()
    page.get_by_role("link", name="Timeline").click()
    marks = page.locator("ol.marks li")
    expect(marks.first).to_contain_text("created as running")
    expect(page.locator("ol.marks li[data-kind=token]")).to_contain_text("first token")
    expect(page.locator("ol.marks li[data-kind=step]")).to_contain_text("step send: success")
    expect(page.locator("ol.marks li[data-kind=callback]")).to_contain_text("job.completed")
    accessible(page, "timeline")

    # Deliveries across jobs, filtered, and a callback sent again from there.
    page.get_by_role("link", name="Deliveries").click()
    page.get_by_label("Event").select_option("job.completed")
    page.get_by_role("button", name="Filter").click()
    row = page.locator(f"tr:has(a[href='/jobs/{hooked['id']}'])")
    expect(row).to_contain_text("127.0.0.1")
    accessible(page, "deliveries")
    delivered = len(receiver.received)
    row.get_by_role("button", name="Re-send").click()
    expect(page.get_by_role("status")).to_contain_text("will be sent again")
    deadline = time.monotonic() + 10
    while len(receiver.received) == delivered:
        assert time.monotonic() < deadline, "the callback was not sent again"
        time.sleep(0.05)
    assert receiver.received[-1].json["job_id"] == hooked["id"]

    page.get_by_role("link", name="Batches").click()
    expect(page.get_by_role("heading", name="LLM batches")).to_be_visible()
    accessible(page, "batches")
    page.close()
