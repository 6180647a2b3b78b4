"""The dashboard as people use it all day, in headless Chromium against a real `jobpulse
serve`: no sideways scrolling at 360, 390 and 1440 px, focus that survives live updates,
actions that follow the job, times in the browser's zone, dark mode by the system or the
toggle (axe-core in both themes on every page), error pages in words, and the API reference
rendered with no request leaving loopback. The pages read the database through the same
JobManager on SQLite and PostgreSQL (test_dashboard.py runs on both); these run on SQLite.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.browser.test_dashboard import ARTIFACTS, browser, sign_in
from tests.e2e.conftest import Server, close, start
from tests.receiver import Receiver

__all__ = ["browser"]  # the fixture, shared with test_dashboard.py

#: The README's pictures: UPDATE_SCREENSHOTS=1 refreshes them from these runs.
IMAGES = Path(__file__).parents[2] / "docs" / "images"
VIEWPORTS = {"phone-360": (360, 740), "phone-390": (390, 844), "desktop": (1440, 900)}


@pytest.fixture(scope="module")
def hook() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("views") / "jobpulse.db"
    served = start(f"sqlite:///{path}", env={"JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true"})
    yield served
    close(served)


@pytest.fixture(scope="module")
def jobs(server: Server, hook: Receiver) -> dict[str, Any]:
    """A little of everything: running with LLM calls, ended with a callback, long names,
    steps.
    """
    with api(server) as http:
        long_meta = {"prompt": "summarise " * 60, "source_id": "crm-7", "nested": {"k": "v" * 90}}
        running = http.post(
            "/v1/jobs",
            json={"job_type": "agent_run", "status": "running", "metadata": long_meta,
                  "callback_url": hook.url},
        ).json()  # fmt: skip
        http.post(f"/v1/jobs/{running['id']}/steps", json={"status": "success"})
        http.post(f"/v1/jobs/{running['id']}/first-token")
        for call in (  # LLM calls: the usage panels have something to show
            {
                "provider": "anthropic",
                "model": "claude-sonnet-4-5",
                "input_tokens": 1800,
                "output_tokens": 420,
                "cache_read_tokens": 12000,
                "ttft_ns": 450_000_000,
                "duration_ns": 4_200_000_000,
            },
            {
                "provider": "openai",
                "model": "gpt-4.1-mini",
                "input_tokens": 900,
                "output_tokens": 160,
                "ttft_ns": 300_000_000,
                "duration_ns": 1_100_000_000,
            },
        ):
            assert http.post(f"/v1/jobs/{running['id']}/usage", json=call).status_code == 201
        ended = http.post("/v1/jobs", json={"status": "running", "callback_url": hook.url}).json()
        http.patch(
            f"/v1/jobs/{ended['id']}",
            json={"stop_reason": "context_window_overflow_in_system_prompt"},
        )
        for job_type in ("llm_request", "file_processing", "embedding_batch"):
            made = http.post("/v1/jobs", json={"job_type": job_type, "status": "running"})
            http.patch(f"/v1/jobs/{made.json()['id']}", json={"stop_reason": "heartbeat_lost"})
        assert hook.got_one.wait(10)
    return {"running": running, "ended": ended}


def api(server: Server) -> httpx.Client:
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


def signed_in(
    browser: Browser, server: Server, *, width: int = 1440, height: int = 900, **options: Any
) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    page = context.new_page()
    sign_in(page, server, server.admin_key)
    return context, page


def page_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def live_update(page: Page, change: Any) -> None:
    """Make `change` through the API and wait until the page's live region has taken it in."""
    region = page.locator("[data-live]")
    expect(region).to_have_attribute("data-streaming", "true")
    before = region.get_attribute("data-updated")
    change()
    page.wait_for_function(
        "(before) => (document.querySelector('[data-live]').dataset.updated ?? null) !== before",
        arg=before,
    )


def serious(page: Page) -> list[tuple[str, str, list[Any]]]:
    results: Any = Axe().run(page)
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_no_page_is_wider_than_the_viewport(
    server: Server, jobs: dict[str, Any], browser: Browser
) -> None:
    paths = {
        "overview": "/",
        "jobs": "/jobs",
        "jobs-filtered": "/jobs?status=running&metadata=source_id%3Dcrm-7",
        "job": f"/jobs/{jobs['running']['id']}",
        "job-ended": f"/jobs/{jobs['ended']['id']}",
        "not-found": "/jobs/job-nope",
        "bad-filter": "/jobs?status=done",
    }
    for name, (width, height) in VIEWPORTS.items():
        context, page = signed_in(browser, server, width=width, height=height)
        for label, path in paths.items():
            page.goto(f"{server.url}{path}")
            page.wait_for_load_state("load")
            assert page_width(page) <= width, f"{label} at {width} px: {page_width(page)} px"
            header = page.locator("header.top").bounding_box()
            assert header is not None
            # The header on one line, or two on a phone (never the four of before).
            assert header["height"] <= (100 if width < 600 else 60), (label, width, header)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
            if name == "phone-390" and label == "jobs":  # what a phone shows first
                page.screenshot(path=str(ARTIFACTS / "phone-jobs-screen.png"))
            if width < 600 and label == "jobs":
                expect(page.locator("details.filter-box")).not_to_have_attribute("open", "")
                page.locator("details.filter-box > summary").click()
                expect(page.get_by_label("Job type")).to_be_visible()
                assert page_width(page) <= width
        context.close()
    if os.environ.get("UPDATE_SCREENSHOTS"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "desktop-overview.png", IMAGES / "overview.png")
        shutil.copyfile(ARTIFACTS / "desktop-job.png", IMAGES / "job.png")
        shutil.copyfile(ARTIFACTS / "phone-jobs-screen.png", IMAGES / "phone-jobs.png")


def test_focus_and_scroll_survive_live_updates(
    server: Server, jobs: dict[str, Any], browser: Browser
) -> None:
    context, page = signed_in(browser, server, width=390, height=844)
    running = jobs["running"]["id"]

    # The jobs page: a job's link, focused by keyboard, stays focused as new jobs arrive.
    page.goto(f"{server.url}/jobs")
    link = page.locator(f"tr[data-job='{running}'] a")
    link.focus()
    page.evaluate("document.activeElement.jobpulseMarked = 'yes'")  # on the node, not in HTML
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    expect(link).to_be_focused()
    with api(server) as http:
        live_update(page, lambda: http.post("/v1/jobs", json={"job_type": "arrives"}))
    expect(page.locator("tr[data-job]").first).to_contain_text("arrives")
    focused = page.evaluate(
        "[document.activeElement.jobpulseMarked, document.activeElement.getAttribute('href')]"
    )
    assert focused[1] == f"/jobs/{running}"  # an equal node at least...
    assert focused[0] == "yes"  # ...and in fact the same one

    # The job page: the focused metadata box keeps focus and the page keeps its scroll.
    page.goto(f"{server.url}/jobs/{running}")
    box = page.locator("pre")
    box.focus()
    page.evaluate("window.scrollTo(0, 400)")
    scrolled = page.evaluate("window.scrollY")
    with api(server) as http:
        live_update(
            page, lambda: http.post(f"/v1/jobs/{running}/heartbeat", json={"progress": {"p": 1}})
        )
        live_update(
            page,
            lambda: http.post(f"/v1/jobs/{running}/heartbeat", json={"progress": {"step": 3}}),
        )
    expect(box).to_be_focused()
    expect(box).to_contain_text('"step": 3')
    assert page.evaluate("window.scrollY") == scrolled
    context.close()


def test_actions_follow_the_job_as_it_ends_elsewhere(
    server: Server, hook: Receiver, browser: Browser
) -> None:
    with api(server) as http:
        job = http.post("/v1/jobs", json={"status": "running", "callback_url": hook.url}).json()
    context, page = signed_in(browser, server)
    page.goto(f"{server.url}/jobs/{job['id']}")
    cancel = page.get_by_role("button", name="Cancel job")
    expect(cancel).to_be_visible()
    expect(page.get_by_role("button", name="Re-send callback")).to_have_count(0)
    # A ticking duration while it runs.
    duration = page.locator("[data-field=duration]")
    expect(duration).to_contain_text("running")
    first = duration.inner_text()
    expect(duration).not_to_have_text(first, timeout=3000)
    with api(server) as http:
        http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": "end_turn"})
    expect(cancel).to_have_count(0)
    expect(page.get_by_role("button", name="Re-send callback")).to_be_visible()
    expect(page.locator("[data-field=status]")).to_contain_text("completed")
    expect(duration).not_to_contain_text("running")
    context.close()


def test_times_are_in_the_browsers_zone_and_date_filters_too(
    server: Server, jobs: dict[str, Any], browser: Browser
) -> None:
    with api(server) as http:
        job = http.post("/v1/jobs", json={"job_type": "zoned"}).json()
    created = datetime.fromisoformat(job["created_at"])
    context, page = signed_in(browser, server, timezone_id="Asia/Kolkata")
    page.goto(f"{server.url}/jobs/{job['id']}")
    india = created + timedelta(hours=5, minutes=30)
    stamp = india.strftime("%Y-%m-%d %H:%M")
    cell = page.locator("dt:has-text('Created') + dd")
    expect(cell).to_contain_text(stamp)
    expect(cell).to_contain_text("GMT+5:30")
    expect(cell).to_contain_text(re.compile(r"now|sec|min"))
    expect(page.locator("[data-zone]")).to_contain_text(re.compile(r"Asia/(Kolkata|Calcutta)"))

    # The jobs list: relative times; an ISO date filter read in the browser's zone.
    page.goto(f"{server.url}/jobs?job_type=zoned")
    expect(page.locator("tr[data-job]")).to_have_count(1)
    expect(page.locator("tr[data-job] time")).to_contain_text(re.compile(r"now|ago"))
    after = (india + timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M")
    page.get_by_label("Created after").fill(after)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"created_after=.*%2B05%3A30"))
    expect(page.locator("tr[data-job]")).to_have_count(0)
    expect(page.get_by_label("Created after")).to_have_value(after)  # shown as typed
    before = (india - timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M")
    page.get_by_label("Created after").fill(before)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-job]")).to_have_count(1)
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_in_both_themes_is_accessible(
    server: Server, jobs: dict[str, Any], browser: Browser, scheme: str
) -> None:
    context, page = signed_in(browser, server, color_scheme=scheme)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(13, 17, 23)") == (scheme == "dark"), background
    toggle = page.get_by_role("button", name="Dark mode")
    expect(toggle).to_have_attribute("aria-pressed", "true" if scheme == "dark" else "false")
    paths = [
        "/",
        "/jobs",
        "/jobs?stuck=true",
        f"/jobs/{jobs['running']['id']}",
        f"/jobs/{jobs['ended']['id']}",
        "/jobs/job-nope",
        "/jobs?created_after=yesterday",
    ]
    for path in paths:
        page.goto(f"{server.url}{path}")
        assert serious(page) == [], f"{path} in {scheme}"
    page.goto(f"{server.url}/")
    page.screenshot(path=str(ARTIFACTS / f"overview-{scheme}.png"), full_page=True)
    if scheme == "dark" and os.environ.get("UPDATE_SCREENSHOTS"):
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "overview-dark.png", IMAGES / "overview-dark.png")

    # The toggle picks the other theme, and it is remembered across pages and reloads.
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "false" if scheme == "dark" else "true")
    page.goto(f"{server.url}/jobs")
    after = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (after == "rgb(13, 17, 23)") == (scheme == "light"), after
    assert serious(page) == [], f"/jobs toggled from {scheme}"
    page.goto(f"{server.url}/login")  # signed in or not, the same theme
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == after
    context.close()


def test_the_tiles_lead_somewhere(server: Server, jobs: dict[str, Any], browser: Browser) -> None:
    context, page = signed_in(browser, server)
    page.locator("#tile-stuck").click()
    expect(page).to_have_url(f"{server.url}/jobs?stuck=true")
    expect(page.get_by_label("Stuck only")).to_be_checked()
    page.goto(f"{server.url}/")
    href = page.locator("#tile-webhooks").get_attribute("href")
    assert href is not None
    answer = page.goto(f"{server.url}{href}")
    assert answer is not None
    assert answer.status == 200
    context.close()


def test_error_pages_say_what_is_wrong(
    server: Server, jobs: dict[str, Any], browser: Browser
) -> None:
    context, page = signed_in(browser, server)
    answer = page.goto(f"{server.url}/jobs/job-00000000-0000-0000-0000-000000000000")
    assert answer is not None
    assert answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator("[data-problem]")).to_contain_text("no such job")
    page.get_by_role("link", name="Back to all jobs").click()
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    for query, named in (
        ("status=done", "status"),
        ("created_after=yesterday", "created_after"),
        ("before=" + "x" * 70, "before"),
    ):
        answer = page.goto(f"{server.url}/jobs?{query}")
        assert answer is not None
        assert answer.status == 422
        assert "json" not in (answer.headers.get("content-type") or "")
        expect(page.locator("[data-problem]")).to_contain_text(named)
    context.close()


@pytest.mark.parametrize(("path", "shows"), [("/docs", ".swagger-ui .opblock"), ("/redoc", "h1")])
def test_the_api_reference_renders_offline(
    server: Server, browser: Browser, path: str, shows: str
) -> None:
    context = browser.new_context()
    left: list[str] = []

    def loopback_only(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    page.goto(f"{server.url}{path}")
    expect(page.locator(shows).first).to_be_visible(timeout=20000)
    expect(page.get_by_text("/v1/jobs").first).to_be_visible()
    assert left == [], left
    page.screenshot(path=str(ARTIFACTS / f"reference-{path.strip('/')}.png"))
    context.close()
