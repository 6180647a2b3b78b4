"""The lane (api/lane.py) answers every request of the hot job routes as their FastAPI routes
do: each request here goes to the app and to the same app without the lane, and both
answers must be the same, well-formed or not; and the lane takes no other route's path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from jobpulse.api.lane import JobLane
from tests.conftest import MakeKey

JSON = {"content-type": "application/json"}
RUNNING = b'{"status": "running"}'
#: What differs between two answers about two jobs made a moment apart.
VOLATILE = {"id", "created_at", "updated_at", "started_at", "completed_at", "total_duration_ns"}


def without_lane(app: FastAPI) -> Any:
    """The app's middleware stack with every layer but the lane, as an ASGI app."""
    layers = app.user_middleware
    lane: object = JobLane
    app.user_middleware = [layer for layer in layers if layer.cls is not lane]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = layers

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
    answers = []
    for side, asgi in (("lane", app), ("route", without_lane(app))):
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            made = await client.post("/v1/jobs", json={}, headers=key)
            job_id = made.json()["id"]
            path = "/v1/jobs" + (f"/{where.format(job=job_id)}" if where else "")
            sent = {name: value.format(side=side) for name, value in headers.items()}
            answer = await client.request(
                method, path, content=body, headers=(key if keyed else {}) | sent
            )
            answers.append(comparable(answer, job_id))
    assert answers[0] == answers[1]


def test_the_lane_takes_only_the_hot_routes(app: FastAPI) -> None:
    """Every path of every route, its parameters filled with a job id: the lane takes those
    of the hot routes and no other.
    """
    lane = JobLane(app)
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
