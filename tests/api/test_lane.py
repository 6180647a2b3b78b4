"""The lane (api/lane.py) answers every request of the hot job routes as their FastAPI routes
do: each request here goes to the app and to the same app without the lane, and both
answers must be the same, well-formed or not; and the lane takes no other route's path.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from jobpulse import Settings
from jobpulse.api import create_app
from jobpulse.api.app import MAX_BODY_BYTES
from jobpulse.api.lane import JobLane
from tests.conftest import MakeKey

JSON = {"content-type": "application/json"}
RUNNING = b'{"status": "running"}'
#: What differs between two answers about two jobs made a moment apart.
VOLATILE = {"id", "created_at", "updated_at", "started_at", "completed_at", "total_duration_ns"}


def without_lane(app: FastAPI) -> Any:
    """The app's middleware stack without the lane ahead of it, as an ASGI app."""
    stack = FastAPI.build_middleware_stack(app)

    async def plain(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        await stack(scope, receive, send)

    return plain


def comparable(answer: httpx.Response, job_id: str) -> tuple[int, Any, dict[str, str]]:
    """An answer's status, body and headers, the job's id and moments left out."""
    headers = {
        name: value
        for name, value in answer.headers.items()
        if name not in {"content-length", "x-correlation-id"}
    }
    text = answer.text.replace(job_id, "JOB")
    try:
        body = json.loads(text)
    except ValueError:
        return answer.status_code, text, headers
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name not in VOLATILE}
    return answer.status_code, body, headers


#: (method, path under the job or "" for /v1/jobs, body, headers, whether to send the key)
CASES: list[tuple[str, str, bytes | None, dict[str, str], bool]] = [
    ("PATCH", "{job}", RUNNING, JSON, True),
    ("PATCH", "{job}", b'{"status": "completed", "metadata": {"a": 1}}', JSON, True),
    ("PATCH", "{job}", RUNNING, {"content-type": "application/json; charset=utf-8"}, True),
    ("PATCH", "{job}", RUNNING, {"content-type": "text/plain"}, True),
    ("PATCH", "{job}", RUNNING, {}, True),
    ("PATCH", "{job}", b"{not json", JSON, True),
    ("PATCH", "{job}", b"[1]", JSON, True),
    ("PATCH", "{job}", b'{"surprise": 1}', JSON, True),
    ("PATCH", "{job}", b'{"ttft_ns": 1e400}', JSON, True),
    ("PATCH", "{job}", b'{"status": "created"}', JSON, True),
    ("PATCH", "{job}", b'{"stop_reason": "end_turn", "status": "failed"}', JSON, True),
    ("PATCH", "{job}", b"", JSON, True),
    ("PATCH", "{job}", b'{"metadata": {"n": 99999999999999999999999, "f": 1e400}}', JSON, True),
    ("PATCH", "{job}", b'{"metadata": {"n": NaN, "s": "\\ud800"}}', JSON, True),
    ("PATCH", "{job}", b'{"status": "running", "status": "completed"}', JSON, True),
    ("POST", "", b'{"metadata": {"n": 99999999999999999999999}}', JSON, True),
    ("PATCH", "{job}", b'{"metadata": ' + b"[" * 970 + b"]" * 970 + b"}", JSON, True),
    ("POST", "", b'{"metadata": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", JSON, True),
    ("PATCH", "{job}", RUNNING, JSON, False),
    ("PATCH", "{job}?access_token=jpt_x", RUNNING, JSON, True),
    ("PATCH", "job-missing", RUNNING, JSON, True),
    ("PATCH", "{job}", RUNNING, {"Idempotency-Key": ""} | JSON, True),
    ("GET", "{job}", None, {}, True),
    ("GET", "{job}", None, {}, False),
    ("GET", "{job}", None, {"Authorization": "Bearer jpt_bogus"}, False),
    ("GET", "{job}", None, {"Authorization": "Basic x"}, False),
    ("GET", "job-missing", None, {}, True),
    ("GET", "{job}?access_token=jpt_bogus", None, {}, False),
    ("POST", "", b"{}", JSON, True),
    ("POST", "", b'{"job_type": "t", "status": "running", "metadata": {"k": "v"}}', JSON, True),
    ("POST", "", b'{"status": "completed"}', JSON, True),
    ("POST", "", b'{"job_type": "llm_batch"}', JSON, True),
    ("POST", "", b'{"callback_url": "ftp://x"}', JSON, True),
    ("POST", "", b"{}", {"Idempotency-Key": ""} | JSON, True),
    ("POST", "", b"{}", {"Idempotency-Key": "k" * 256} | JSON, True),
    ("POST", "", b"{}", {"Idempotency-Key": "same-{side}"} | JSON, True),
    ("POST", "", b"{}", JSON, False),
    ("PATCH", "{job}", b" " * MAX_BODY_BYTES + RUNNING, JSON, True),
    ("PATCH", "{job}", b" " * MAX_BODY_BYTES + RUNNING, JSON, False),
    ("POST", "", b" " * (MAX_BODY_BYTES - 2) + b"{}", JSON, True),
    ("GET", "{job}", b"{}", JSON, True),
    ("GET", "{job}", b"{}", JSON, False),
    ("PATCH", "{job}", RUNNING, {"Origin": "http://one.example"} | JSON, True),
    ("PATCH", "{job}", RUNNING, {"Authorization": "Bearer jpt_x"} | JSON, False),
]


@pytest.mark.parametrize(("method", "where", "body", "headers", "keyed"), CASES)
async def test_the_lane_answers_as_the_route_does(
    app: FastAPI,
    make_key: MakeKey,
    method: str,
    where: str,
    body: bytes | None,
    headers: dict[str, str],
    keyed: bool,
) -> None:
    key = await make_key("org", "alice")
    lane, route = await both_answers(app, key, method, where, body, headers, keyed)
    assert lane == route


Answer = tuple[int, Any, dict[str, str]]
#: What one request added to the HTTP histogram's counts, by method, route and status.
Counted = dict[tuple[str, str, str], float]


async def both_answers(
    app: FastAPI,
    key: dict[str, str],
    method: str,
    where: str,
    body: Any,
    headers: dict[str, str],
    keyed: bool = True,
) -> tuple[tuple[Answer, Counted], tuple[Answer, Counted]]:
    """The comparable answers to one request (see CASES; a callable `body` gives the content
    to send, an iterator for a chunked body) with the lane and without it, each about a job
    of its own made first with `key`, with what each added to the HTTP histogram.
    """
    sides = []
    for side, asgi in (("lane", app), ("route", without_lane(app))):
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            made = await client.post("/v1/jobs", json={}, headers=key)
            job_id = made.json()["id"]
            path = "/v1/jobs" + (f"/{where.format(job=job_id)}" if where else "")
            sent = {name: value.format(side=side) for name, value in headers.items()}
            before = served(app)
            content = body() if callable(body) else body
            sent = (key if keyed else {}) | sent
            answer = await client.request(method, path, content=content, headers=sent)
            after = served(app)
            counted = {labels: n - before.get(labels, 0) for labels, n in after.items()}
            sides.append((comparable(answer, job_id), {k: n for k, n in counted.items() if n}))
    return sides[0], sides[1]


def served(app: FastAPI) -> dict[tuple[str, str, str], float]:
    """The HTTP histogram's counts, by method, route and status."""
    registry = app.state.jobs.metrics.registry
    return {
        (sample.labels["method"], sample.labels["route"], sample.labels["status"]): sample.value
        for family in registry.collect()
        if family.name == "jobpulse_http_request_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    }


async def test_a_chunked_body_is_answered_as_the_route_does(
    app: FastAPI, make_key: MakeKey
) -> None:
    key = await make_key("org", "alice")

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"status": '
        yield b'"running"}'

    lane, route = await both_answers(app, key, "PATCH", "{job}", chunked, JSON)
    assert lane == route
    assert lane[0][0] == 200


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("PATCH", {"Origin": "http://one.example"}),
        ("PATCH", {"Origin": "http://other.example"}),
        ("PATCH", {}),
        ("GET", {"Origin": "http://one.example"}),
    ],
)
async def test_cors_is_answered_as_the_route_does(
    database_url: str, method: str, headers: dict[str, str]
) -> None:
    settings = Settings(database_url=database_url, cors_origins="http://one.example")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        _key, secret = await app.state.keys.create(organization_id="org", user_id="alice")
        key = {"Authorization": f"Bearer {secret}"}
        body = RUNNING if method == "PATCH" else None
        lane, route = await both_answers(app, key, method, "{job}", body, headers | JSON)
    assert lane == route
    assert ("access-control-allow-origin" in lane[0][2]) == (
        headers.get("Origin") == "http://one.example"
    )


@pytest.mark.parametrize("method", ["PATCH", "GET", "POST"])
async def test_an_unexpected_error_is_answered_as_the_app_does(
    app: FastAPI, make_key: MakeKey, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await make_key("org", "alice")

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("broken")

    jobs = app.state.jobs
    made = jobs.create_job
    monkeypatch.setattr(jobs, "update_job", broken)
    monkeypatch.setattr(jobs, "get_job", broken)
    calls = 0

    async def create_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls % 2 == 0:  # the job each side makes first is made
            raise RuntimeError("broken")
        return await made(*args, **kwargs)

    if method == "POST":
        monkeypatch.setattr(jobs, "create_job", create_once)
    where = "" if method == "POST" else "{job}"
    body = None if method == "GET" else RUNNING if method == "PATCH" else b"{}"
    (lane, lane_counted), (route, route_counted) = await both_answers(
        app, key, method, where, body, JSON
    )
    assert lane_counted == route_counted
    for status, answer, headers in (lane, route):
        assert status == 500
        assert answer["error"]["code"] == "internal_error"
        assert headers["connection"] == "close"
    assert lane[2] == route[2]


def test_the_lane_takes_only_the_hot_routes(app: FastAPI) -> None:
    """Every path of every route, its parameters filled with a job id: the lane takes those
    of the hot routes and no other.
    """
    lane = JobLane(app, max_bytes=MAX_BODY_BYTES)
    templates = {path: set(ops) for path, ops in app.openapi()["paths"].items()}
    templates |= {"/v1/jobs/stream": {"get"}, "/v1/jobs/count": {"get"}}
    taken = set()
    for template, methods in templates.items():
        path = re.sub(r"\{[^}]+\}", "job-00000000-0000-0000-0000-000000000000", template)
        for method in {*methods, "get", "post", "patch", "put", "delete", "head", "options"}:
            scope = {"type": "http", "path": path, "method": method.upper(), "query_string": b""}
            hot, _job_id = lane._hot(scope)
            if hot is not None:
                assert hot.route.path == template
                assert method.upper() in (hot.route.methods or ())
                taken.add((method.upper(), template))
    assert taken == {
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("PATCH", "/v1/jobs/{job_id}"),
    }
