"""The dashboard's HTTP edges without a browser: sign-in required, wrong keys, CSRF, bad
filters and windows answered 4xx (never 5xx), another member's job not found."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import MakeKey


async def signed_in(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Sign `http` in with the key in `headers` (the form's way, CSRF token included)."""
    await http.get("/login")
    key = headers["Authorization"].removeprefix("Bearer ")
    answer = await http.post(
        "/login", data={"key": key, "csrf": http.cookies["jobpulse_csrf"], "next": "/jobs"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/jobs"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


async def test_pages_need_a_session(http: httpx.AsyncClient) -> None:
    for path in ("/", "/jobs", "/jobs/job-x", "/live"):
        answer = await http.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=")


async def test_a_wrong_key_and_a_missing_csrf_token_are_refused(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    await http.get("/login")
    token = http.cookies["jobpulse_csrf"]
    wrong = await http.post("/login", data={"key": "jp_nope", "csrf": token})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    key = (await make_key("org-a", "alice"))["Authorization"].removeprefix("Bearer ")
    forged = await http.post("/login", data={"key": key, "csrf": "guessed"})
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "csrf_refused"
    away = await http.post("/login", data={"key": key, "csrf": token, "next": "//evil.test/"})
    assert away.headers["location"] == "/"  # never sent to another site


@pytest.mark.parametrize(
    "query",
    [
        {"job_type": "a\x00b"},
        {"metadata": "k\x00=v"},
        {"metadata": "bad key=v"},
        {"status": "done"},
        {"created_after": "yesterday"},
        {"before": "x" * 65},
    ],
)
async def test_bad_filters_are_4xx(
    http: httpx.AsyncClient, make_key: MakeKey, query: dict[str, str]
) -> None:
    await signed_in(http, await make_key("org-a", "alice"))
    answer = await http.get("/jobs", params=query)
    assert 400 <= answer.status_code < 500, answer.text


async def test_a_member_cannot_open_or_act_on_anothers_job(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    bob = await make_key("org-a", "bob")
    theirs = (await http.post("/v1/jobs", json={}, headers=bob)).json()["id"]
    await signed_in(http, await make_key("org-a", "alice"))
    assert (await http.get(f"/jobs/{theirs}")).status_code == 404
    token = http.cookies["jobpulse_csrf"]
    cancel = await http.post(f"/jobs/{theirs}/cancel", data={"csrf": token})
    assert cancel.status_code == 404
    assert (await http.get(f"/v1/jobs/{theirs}", headers=bob)).json()["status"] == "created"
    no_token = await http.post(f"/jobs/{theirs}/cancel")
    assert no_token.status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"until": "0001-01-01T00:00:00Z"},
        {"since": "9999-12-31T12:00:00Z"},
        {"since": "0001-01-01T00:00:00Z", "until": "0001-01-01T06:00:00Z"},
    ],
)
async def test_stats_at_the_ends_of_time(
    http: httpx.AsyncClient, make_key: MakeKey, params: dict[str, str]
) -> None:
    answer = await http.get("/v1/stats", params=params, headers=await make_key("o", "u"))
    assert answer.status_code in (200, 422), answer.text


async def test_a_position_past_64_bits_is_refused(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("o", "u") | {"Last-Event-ID": "0.99999999999999999999"}
    answer = await http.get("/v1/jobs/stream", headers=headers)
    assert answer.status_code == 422


async def test_pages_escape_what_they_are_given(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    alice = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"job_type": "<b>x</b>"}, headers=alice)).json()
    await signed_in(http, alice)
    said = {"action": "cancel", "result": "<script>alert(1)</script>"}
    page = await http.get(f"/jobs/{job['id']}", params=said)
    assert "<script>alert(1)</script>" not in page.text
    assert "Nothing was cancelled; reload the page and try again." in page.text  # no code
    assert "<b>x</b>" not in page.text
    assert "&lt;b&gt;x&lt;/b&gt;" in page.text
    login = await http.get("/login", params={"fragment": "1"})  # no live region: the page
    assert login.status_code == 200
    region = await http.get("/jobs", params={"fragment": "1"})
    assert "<html" not in region.text
    assert "data-job=" in region.text


@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/v1/jobs/stream", {"heartbeats": "maybe"}, {}),
        ("/v1/jobs/stream", {}, {"Last-Event-ID": "1." + "9" * 5000}),
        ("/v1/jobs/stream", {"last_event_id": "NaN"}, {}),
        ("/v1/stats", {"since": "NaN"}, {}),
        ("/v1/stats", {"bucket": "hour", "until": "0001-01-01T00:00:00"}, {}),
    ],
)
async def test_bad_stream_and_stats_parameters_are_422(
    http: httpx.AsyncClient,
    make_key: MakeKey,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> None:
    answer = await http.get(path, params=params, headers=await make_key("o", "u") | headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "validation_error"


async def test_a_stale_limit_that_is_not_a_number_is_refused(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("o", "u") | {"content-type": "application/json"}
    for value in (b"NaN", b"-1", b"1e400", b'"soon"'):
        answer = await http.post(
            "/v1/jobs", content=b'{"stale_after_s": ' + value + b"}", headers=headers
        )
        assert answer.status_code == 422, (value, answer.text)
    listed = await http.get("/v1/jobs", headers=headers)
    assert listed.json() == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"status": "done"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"stop_reason": "bored"}, "stop_reason"),
        ({"before": "x" * 65}, "before"),
        ({"job_type": "a\x00b"}, "job_type"),
    ],
)
async def test_a_wrong_filter_is_a_page_that_names_it(
    http: httpx.AsyncClient, make_key: MakeKey, query: dict[str, str], named: str
) -> None:
    await signed_in(http, await make_key("org-a", "alice"))
    answer = await http.get("/jobs", params=query)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    problem = re.search(r"<p data-problem>(.*?)</p>", answer.text, re.S)
    assert problem is not None, answer.text
    assert named in problem.group(1)
    assert 'href="/jobs"' in answer.text  # a way on


async def test_an_unknown_job_is_a_page(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    await signed_in(http, await make_key("org-a", "alice"))
    answer = await http.get("/jobs/job-00000000-0000-0000-0000-000000000000")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "no such job" in answer.text
    api = await http.get("/v1/jobs/job-x", headers=await make_key("org-a", "alice"))
    assert api.json()["error"]["code"] == "not_found"  # the API keeps its JSON


async def test_cancel_says_what_happened_in_words(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=alice)).json()
    await signed_in(http, alice)
    token = http.cookies["jobpulse_csrf"]
    first = await http.post(f"/jobs/{job['id']}/cancel", data={"csrf": token})
    assert first.status_code == 303
    page = await http.get(first.headers["location"])
    assert "The job was cancelled." in page.text
    again = await http.post(f"/jobs/{job['id']}/cancel", data={"csrf": token})
    page = await http.get(again.headers["location"])
    assert "it had already ended (cancelled)" in page.text
    assert "invalid_transition" not in page.text
    assert "Cancel job</button>" not in page.text  # nothing left to cancel
    resend = await http.post(f"/jobs/{job['id']}/resend", data={"csrf": token})
    page = await http.get(resend.headers["location"])
    assert "no callback to deliver" in page.text


async def test_charts_have_whole_labels_and_whole_counts(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    for reason in ("context_window_overflow_in_system_prompt", "heartbeat_lost", "end_turn"):
        job = (await http.post("/v1/jobs", json={"status": "running"}, headers=alice)).json()
        await http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": reason}, headers=alice)
    await signed_in(http, alice)
    page = (await http.get("/")).text
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", page)
    assert "context_window_overflow_in_system_prompt" in texts
    assert "heartbeat_lost" in texts
    assert not any("…" in text for text in texts)
    axes = re.findall(r'<g class="axis y[^"]*">(.*?)</g></g>', page, re.S)
    numbers = [t for axis in axes for t in re.findall(r"<text[^>]*>([^<]*)</text>", axis)]
    assert numbers, "no axis labels"
    assert all(re.fullmatch(r"\d+", n) for n in numbers if n and n[0].isdigit()), numbers
    # Status colours, each beside its name.
    assert "#cf222e" in page  # failed
    assert "#1a7f37" in page  # completed


async def test_an_address_nothing_serves_is_a_page_for_a_browser(
    http: httpx.AsyncClient,
) -> None:
    browser = await http.get("/no/such/page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 404
    assert browser.headers["content-type"].startswith("text/html")
    assert "There is no page at this address" in browser.text
    api = await http.get("/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.json()["error"]["code"] == "not_found"  # the API keeps its JSON
    script = await http.get("/no/such/page")
    assert script.json()["error"]["code"] == "not_found"
