"""The LLM usage panels in headless Chromium against a real `jobpulse serve`: the overview's
tokens and cost charts and per-model table, a job's totals and calls, the jobs list's usage
column and the `model` filter show exactly the sums of the calls posted through the API
(SQLite and PostgreSQL); a call recorded while a page is open appears without a reload and
without taking the reader's focus; at 390 px nothing scrolls sideways; axe-core finds nothing
serious in either theme.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser import test_dashboard as dashboard
from tests.browser.test_dashboard import ARTIFACTS, accessible, api, sign_in
from tests.browser.test_dashboard_views import live_update, page_width, serious, signed_in
from tests.e2e.conftest import Server, close, start

#: The fixtures of the dashboard's browser test: a served database of each kind, Chromium.
server = dashboard.server
browser = dashboard.browser

Call = dict[str, Any]
SONNET: Call = {"provider": "anthropic", "model": "claude-sonnet-4-5"}
MINI: Call = {"provider": "openai", "model": "gpt-4.1-mini"}
#: A model the shipped price table does not know: its calls' cost is unknown.
UNPRICED: Call = {"provider": "acme", "model": "acme-large-2"}
MS = 1_000_000

#: The calls of the run that keeps running. The first is priced by the shipped table:
#: (1,200 * $3 + 350 * $15 + 18,000 * $0.30) / 1,000,000 = $0.01425.
RUNNING_CALLS: list[Call] = [
    SONNET | {"input_tokens": 1200, "output_tokens": 350, "cache_read_tokens": 18000,
              "ttft_ns": 400 * MS, "duration_ns": 2000 * MS},
    SONNET | {"input_tokens": 800, "output_tokens": 150, "cache_write_tokens": 2000,
              "cost_usd": 0.02, "ttft_ns": 600 * MS, "duration_ns": 3000 * MS},
    MINI | {"input_tokens": 1000, "output_tokens": 210, "cost_usd": 0.000736,
            "ttft_ns": 300 * MS, "duration_ns": 1000 * MS},
]  # fmt: skip
#: The calls of the run that ends: one of a model with no price, one after the end.
ENDED_CALLS: list[Call] = [
    UNPRICED | {"input_tokens": 500, "output_tokens": 100, "duration_ns": 500 * MS}
]
LATE_CALL = SONNET | {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001}


def _record(http: httpx.Client, job_id: str, call: dict[str, Any]) -> None:
    answer = http.post(f"/v1/jobs/{job_id}/usage", json=call)
    assert answer.status_code == 201, answer.text


@pytest.fixture
def runs(server: Server) -> dict[str, str]:
    """A running agent run with three calls, an ended one with two (one unpriced, one
    late), and a job with none.
    """
    with api(server) as http:
        running = http.post("/v1/jobs", json={"job_type": "agent_run", "status": "running"})
        ended = http.post("/v1/jobs", json={"job_type": "agent_run", "status": "running"})
        plain = http.post("/v1/jobs", json={"job_type": "etl"})
        ids = {"running": running.json()["id"], "ended": ended.json()["id"]}
        for call in RUNNING_CALLS:
            _record(http, ids["running"], call)
        for call in ENDED_CALLS:
            _record(http, ids["ended"], call)
        http.patch(f"/v1/jobs/{ids['ended']}", json={"stop_reason": "end_turn"})
        _record(http, ids["ended"], LATE_CALL)
    return ids | {"plain": plain.json()["id"]}


def cells(row: Locator) -> dict[str, str]:
    """A table row's `data-cell` texts by name."""
    found: dict[str, str] = row.evaluate(
        "(row) => Object.fromEntries([...row.querySelectorAll('[data-cell]')]"
        ".map((cell) => [cell.dataset.cell, cell.textContent.trim()]))"
    )
    return found


def figures(scope: Page | Locator) -> dict[str, str]:
    """The `data-usage` texts of a usage panel by name."""
    found: dict[str, str] = scope.locator("[data-usage-panel]").evaluate(
        "(panel) => Object.fromEntries([...panel.querySelectorAll('[data-usage]')]"
        ".map((cell) => [cell.dataset.usage, cell.textContent.trim().replace(/\\s+/g, ' ')]))"
    )
    return found


def seconds(value: float | None) -> str:
    """A quantile as the pages write it."""
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def test_the_panels_show_the_sums_of_the_recorded_calls(
    server: Server, runs: dict[str, str], browser: Browser
) -> None:
    page = browser.new_page()
    sign_in(page, server, server.admin_key)

    # The overview: the window's sums; the cost of the unpriced call is not guessed.
    expect(page.locator("[data-usage=calls]")).to_have_text("5")
    assert figures(page) == {
        "calls": "5",
        "input_tokens": "3,510",
        "output_tokens": "815",
        "cache_read_tokens": "18,000",
        "cache_write_tokens": "2,000",
        "cost": "$0.035986 known, 1 call of unknown cost",
    }
    for title in ("Tokens", "Cost (USD)"):
        expect(page.locator("figure svg").filter(has_text=title)).to_have_count(1)
    rows = page.locator("[data-models] tbody tr")
    expect(rows).to_have_count(3)
    with api(server) as http:
        stats = http.get("/v1/stats").json()["usage"]["by_model"]
    shown = {row.get_attribute("data-model"): cells(row) for row in rows.all()}
    timing = {
        key: {
            f"{facet}_{q}": seconds(stats[key][facet][q])
            for facet in ("ttft", "duration")
            for q in ("p50", "p99")
        }
        for key in stats
    }
    assert shown == {
        "anthropic/claude-sonnet-4-5": {
            "calls": "3", "input_tokens": "2,010", "output_tokens": "505",
            "cache_read_tokens": "18,000", "cache_write_tokens": "2,000", "cost": "$0.03525",
            "output_tokens_per_s": "100.0",  # 500 tokens of the two timed calls in 5 s
        } | timing["anthropic/claude-sonnet-4-5"],
        "openai/gpt-4.1-mini": {
            "calls": "1", "input_tokens": "1,000", "output_tokens": "210",
            "cache_read_tokens": "0", "cache_write_tokens": "0", "cost": "$0.000736",
            "output_tokens_per_s": "210.0",
        } | timing["openai/gpt-4.1-mini"],
        "acme/acme-large-2": {
            "calls": "1", "input_tokens": "500", "output_tokens": "100",
            "cache_read_tokens": "0", "cache_write_tokens": "0", "cost": "unknown",
            "output_tokens_per_s": "200.0",
        } | timing["acme/acme-large-2"],
    }  # fmt: skip
    assert shown["openai/gpt-4.1-mini"]["ttft_p50"] != "—"  # one call: its bucket's quantile

    # The model filter: that model's calls, and only the jobs that called it.
    page.get_by_label("Model", exact=True).fill("claude-sonnet-4-5")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(f"{server.url}/?window=24h&job_type=&model=claude-sonnet-4-5")
    expect(page.locator("[data-usage=calls]")).to_have_text("3")
    expect(rows).to_have_count(1)
    expect(page.locator("[data-figure=total]")).to_have_text("2")  # both runs called it
    page.get_by_label("Model", exact=True).fill("gpt-4.1-mini")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("[data-usage=cost]")).to_have_text("$0.000736")
    page.get_by_role("link", name="gpt-4.1-mini").click()
    expect(page).to_have_url(f"{server.url}/jobs?model=gpt-4.1-mini")
    expect(page.locator("tr[data-job]")).to_have_count(1)
    expect(page.locator("tr[data-job]")).to_contain_text(runs["running"])
    expect(page.get_by_label("Model", exact=True)).to_have_value("gpt-4.1-mini")

    # A saved view keeps the model filter.
    page.get_by_label("Save these filters as").fill("mini runs")
    page.get_by_role("button", name="Save view").click()
    page.get_by_role("link", name="mini runs").click()
    expect(page).to_have_url(f"{server.url}/jobs?model=gpt-4.1-mini")
    expect(page.locator("tr[data-job]")).to_have_count(1)

    # The jobs list: each job's tokens and cost; unknown when a model has no price.
    page.goto(f"{server.url}/jobs")
    usage = {job: page.locator(f"tr[data-job='{runs[job]}'] [data-cell=usage]") for job in runs}
    expect(usage["running"]).to_have_text("23,710 tokens, $0.034986")
    expect(usage["ended"]).to_have_text("615 tokens, cost unknown")
    expect(usage["plain"]).to_have_text("—")

    # A job's page: its totals, by model, and its calls in the order they were recorded.
    page.goto(f"{server.url}/jobs/{runs['running']}")
    assert figures(page) == {
        "calls": "3",
        "input_tokens": "3,000",
        "output_tokens": "710",
        "cache_read_tokens": "18,000",
        "cache_write_tokens": "2,000",
        "cost": "$0.034986",
    }
    calls = page.locator("[data-calls] tbody tr")
    expect(calls).to_have_count(3)
    expect(calls.nth(0)).to_contain_text("claude-sonnet-4-5")
    expect(calls.nth(0)).to_contain_text("$0.01425")  # priced by the table when recorded
    expect(calls.nth(0)).to_contain_text("400 ms")
    expect(calls.nth(0)).to_contain_text("2.00 s")
    expect(calls.nth(2)).to_contain_text("openai")
    page.goto(f"{server.url}/jobs/{runs['ended']}")
    assert figures(page)["cost"] == "unknown (no price for the model)"
    models = page.locator("[data-job-models] tbody tr")
    assert {row.get_attribute("data-model"): cells(row)["cost"] for row in models.all()} == {
        "acme/acme-large-2": "unknown (no price for the model)",
        "anthropic/claude-sonnet-4-5": "$0.001",
    }
    expect(page.locator("[data-calls] tbody tr").nth(1)).to_contain_text("after the job ended")
    page.goto(f"{server.url}/jobs/{runs['plain']}")
    expect(page.locator("[data-usage-none]")).to_have_text("No LLM call recorded.")
    accessible(page, "job-without-usage")
    page.close()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path: Path = tmp_path_factory.mktemp("usage") / "jobpulse.db"
    served = start(f"sqlite:///{path}")
    yield served
    close(served)


def running_job(server: Server, job_type: str, calls: list[Call]) -> dict[str, Any]:
    """A running job of `job_type` that recorded `calls`."""
    with api(server) as http:
        job: dict[str, Any] = http.post(
            "/v1/jobs", json={"job_type": job_type, "status": "running"}
        ).json()
        for call in calls:
            _record(http, job["id"], call)
    return job


def test_a_call_recorded_while_a_page_is_open_appears_in_place(
    sqlite_server: Server, browser: Browser
) -> None:
    server = sqlite_server
    job = running_job(server, "live_run", [MINI | {"input_tokens": 100, "output_tokens": 20}])
    context, page = signed_in(browser, server, width=390, height=844)

    # A job's page: the call appears in its table and totals; focus and scroll stay.
    page.goto(f"{server.url}/jobs/{job['id']}")
    expect(page.locator("[data-calls] tbody tr")).to_have_count(1)
    box = page.get_by_role("region", name="LLM calls table")
    box.focus()
    page.evaluate("document.activeElement.jobpulseMarked = 'yes'")
    page.evaluate("window.scrollTo(0, 300)")
    scrolled = page.evaluate("window.scrollY")
    with api(server) as http:
        live_update(page, lambda: _record(http, job["id"], SONNET | {"input_tokens": 7}))
    expect(page.locator("[data-calls] tbody tr")).to_have_count(2)
    expect(page.locator("[data-usage=input_tokens]")).to_have_text("107")
    expect(box).to_be_focused()
    assert page.evaluate("document.activeElement.jobpulseMarked") == "yes"
    assert page.evaluate("window.scrollY") == scrolled

    # The overview and the jobs list follow new calls too.
    page.goto(f"{server.url}/?model=gpt-4.1-mini")
    expect(page.locator("[data-usage=output_tokens]")).to_have_text("20")
    with api(server) as http:
        live_update(page, lambda: _record(http, job["id"], MINI | {"output_tokens": 5}))
    expect(page.locator("[data-usage=output_tokens]")).to_have_text("25")
    page.goto(f"{server.url}/jobs?job_type=live_run")
    cell = page.locator("[data-cell=usage]")
    expect(cell).to_contain_text("132 tokens")
    with api(server) as http:
        live_update(page, lambda: _record(http, job["id"], MINI | {"output_tokens": 8}))
    expect(cell).to_contain_text("140 tokens")
    context.close()


def test_the_panels_fit_a_phone_and_pass_axe_in_both_themes(
    sqlite_server: Server, browser: Browser
) -> None:
    server = sqlite_server
    job = running_job(server, "agent_run", [*RUNNING_CALLS, *ENDED_CALLS])
    paths = {
        "overview": "/",
        "job": f"/jobs/{job['id']}",
        "jobs": "/jobs",
        "overview-unpriced": "/?model=acme-large-2",
        "overview-no-calls": "/?model=none-such",
    }
    context, page = signed_in(browser, server, width=390, height=844)
    for name, path in paths.items():
        page.goto(f"{server.url}{path}")
        assert page_width(page) <= 390, f"{path} at 390 px: {page_width(page)} px"
        accessible(page, f"usage-phone-{name}")
    context.close()
    for scheme in ("light", "dark"):
        context, page = signed_in(browser, server, color_scheme=scheme)
        for name, path in paths.items():
            page.goto(f"{server.url}{path}")
            assert serious(page) == [], f"{path} in {scheme}"
            page.screenshot(path=str(ARTIFACTS / f"usage-{scheme}-{name}.png"), full_page=True)
        context.close()
