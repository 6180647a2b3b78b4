"""The dashboard in headless Chromium (Debian's, driven by Playwright) against a real
`jobpulse serve`, on SQLite and PostgreSQL: sign in and out, overview figures that equal the
API's, filters, a job page that follows the job live, cancel and re-send from the page, a
member who never sees another's job, and no serious or critical axe-core violation.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from tests.e2e.conftest import JOBPULSE, Server, close, start
from tests.receiver import Receiver

CHROMIUM = os.environ.get("JOBPULSE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Chromium, for one test. Ask for it after the server: Playwright's sync API runs an
    event loop while it is open, and the database fixtures need their own.
    """
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def server(empty_database_url: str) -> Iterator[Server]:
    served = start(empty_database_url, env={"JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true"})
    yield served
    close(served)


def api(server: Server, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or server.admin_key}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


def new_key(server: Server, org: str, user: str) -> str:
    done = subprocess.run(
        [JOBPULSE, "keys", "create", "--org", org, "--user", user,
         "--database-url", server.database_url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1].split()[-1]


def sign_in(page: Page, server: Server, key: str) -> None:
    page.goto(f"{server.url}/")
    expect(page).to_have_url(f"{server.url}/login?next=/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def accessible(page: Page, name: str) -> None:
    """No serious or critical axe-core violation; a screenshot of the page kept."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    results: Any = Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{name}: {bad}"


def test_an_operator_signs_in_watches_and_acts(
    server: Server, receiver: Receiver, browser: Browser
) -> None:
    with api(server) as http:
        running = http.post("/v1/jobs", json={"job_type": "agent", "status": "running"}).json()
        red = http.post("/v1/jobs", json={"metadata": {"team": "red"}}).json()
        http.post("/v1/jobs", json={"job_type": "agent"})
        ended = http.post(
            "/v1/jobs", json={"status": "running", "callback_url": receiver.url}
        ).json()
        http.patch(f"/v1/jobs/{ended['id']}", json={"stop_reason": "end_turn"})
        assert receiver.got_one.wait(10)
    context = browser.new_context()
    page = context.new_page()

    # A wrong key is refused, with a message; the right one opens the overview.
    page.goto(f"{server.url}/login")
    page.get_by_label("API key").fill("jp_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    accessible(page, "login")
    sign_in(page, server, server.admin_key)

    with api(server) as http:
        count = http.get("/v1/jobs/count").json()
    expect(page.locator("[data-figure=total]")).to_have_text(str(count["total"]))
    for status, number in count["by_status"].items():
        expect(page.locator(f"[data-status-count={status}]")).to_have_text(str(number))
    accessible(page, "overview")  # the README's pictures: test_dashboard_views.py

    # The overview follows new jobs without a reload.
    with api(server) as http:
        http.post("/v1/jobs", json={"job_type": "agent"})
    expect(page.locator("[data-figure=total]")).to_have_text(str(count["total"] + 1))

    # Jobs, filtered by status.
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_label("Status").select_option("running")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tr[data-job]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(running["id"])
    accessible(page, "jobs")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Metadata key=value").fill("team=red")
    page.get_by_label("Active").select_option("active")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(red["id"])
    page.get_by_label("Metadata key=value").fill("")
    page.get_by_label("Active").select_option("")
    page.get_by_label("Status").select_option("running")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)

    # A job page follows the job as it changes through the API.
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name=f"Job {running['id']}")).to_be_visible()
    status = page.locator("[data-field=status]")
    expect(status).to_contain_text("running")
    with api(server) as http:
        http.patch(f"/v1/jobs/{running['id']}", json={"metadata": {"step": 2}})
        http.post(f"/v1/jobs/{running['id']}/heartbeat")
    page.wait_for_timeout(300)
    with api(server) as http:
        refused = http.patch(f"/v1/jobs/{running['id']}", json={"status": "created"})
        assert refused.status_code == 409
    accessible(page, "job")

    # Cancel from the page: it asks first; declined, nothing happens.
    questions: list[str] = []
    answer = {"accept": False}

    def confirm(dialog: Dialog) -> None:
        questions.append(dialog.message)
        if answer["accept"]:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", confirm)
    page.get_by_role("button", name="Cancel job").click()
    assert questions
    assert "Cancel job" in questions[-1]
    expect(status).to_contain_text("running")
    # Accepted: the API sees it, the page says so in words and offers no Cancel any more.
    answer["accept"] = True
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_role("status")).to_have_text("The job was cancelled.")
    expect(status).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    with api(server) as http:
        assert http.get(f"/v1/jobs/{running['id']}").json()["status"] == "cancelled"
    expect(page.locator(".timeline .rejected")).to_contain_text("rejected")

    # Re-send a callback from the ended job's page: said in words, the attempt appears.
    delivered = len(receiver.received)
    page.goto(f"{server.url}/jobs/{ended['id']}")
    attempts = page.locator("tr[data-attempt]")
    expect(attempts).to_have_count(1)
    page.get_by_role("button", name="Re-send callback").click()
    expect(page.get_by_role("status")).to_contain_text("queued to be sent again")
    deadline = time.monotonic() + 10
    while len(receiver.received) == delivered:
        assert time.monotonic() < deadline, "the callback was not sent again"
        time.sleep(0.05)
    assert receiver.received[-1].json["type"] == "job.completed"
    expect(attempts).to_have_count(2)  # the table follows, no reload

    # Signing out ends the session.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.url}/login")
    page.goto(f"{server.url}/jobs")
    expect(page).to_have_url(f"{server.url}/login?next=/jobs")
    context.close()


def test_a_status_change_appears_on_an_open_page(server: Server, browser: Browser) -> None:
    with api(server) as http:
        job = http.post("/v1/jobs", json={}).json()
    page = browser.new_page()
    sign_in(page, server, server.admin_key)
    page.goto(f"{server.url}/jobs/{job['id']}")
    status = page.locator("[data-field=status]")
    expect(status).to_contain_text("created")
    expect(page.locator("[data-live]")).to_have_attribute("data-streaming", "true")
    with api(server) as http:
        http.patch(f"/v1/jobs/{job['id']}", json={"status": "running"})
    expect(status).to_contain_text("running")
    with api(server) as http:
        http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": "error"})
    expect(status).to_contain_text("failed")
    page.close()


def test_a_member_sees_only_their_own_jobs(server: Server, browser: Browser) -> None:
    alice, bob = new_key(server, "org-a", "alice"), new_key(server, "org-a", "bob")
    with api(server, alice) as http:
        mine = http.post("/v1/jobs", json={"job_type": "mine"}).json()
    with api(server, bob) as http:
        theirs = http.post("/v1/jobs", json={"job_type": "theirs"}).json()
    page = browser.new_page()
    sign_in(page, server, alice)
    expect(page.locator("[data-figure=total]")).to_have_text("1")
    page.goto(f"{server.url}/jobs")
    expect(page.locator("tr[data-job]")).to_have_count(1)
    expect(page.locator("tr[data-job]").first).to_contain_text(mine["id"])
    with api(server, bob) as http:
        http.post("/v1/jobs", json={"job_type": "theirs"})  # no live update brings it in
    page.wait_for_timeout(800)
    expect(page.locator("tr[data-job]")).to_have_count(1)
    answer = page.goto(f"{server.url}/jobs/{theirs['id']}")
    assert answer is not None
    assert answer.status == 404
    # The session's own stream carries none of bob's events.
    events = page.evaluate(
        """async () => {
            const source = new EventSource('/live');
            const seen = [];
            source.onmessage = (e) => seen.push(JSON.parse(e.data).job_id);
            await new Promise((r) => setTimeout(r, 500));
            await fetch('/v1/jobs', {method: 'POST'});  // no API key: refused, nothing made
            await new Promise((r) => setTimeout(r, 500));
            source.close();
            return seen;
        }"""
    )
    assert theirs["id"] not in events
    page.close()
