"""The reproductions of "no input can hurt another tenant", on SQLite and PostgreSQL: each
bad input gets a 4xx that changes nothing, and the other tenants carry on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import MakeKey

JSON = {"Content-Type": "application/json"}


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


async def snapshot(http: httpx.AsyncClient, headers: dict[str, str]) -> list[Any]:
    """Everything the caller can see: its jobs and each one's history."""
    jobs = (await http.get("/v1/jobs?limit=1000", headers=headers)).json()
    events = [(await http.get(f"/v1/jobs/{j['id']}/events", headers=headers)).json() for j in jobs]
    return [jobs, events]


async def test_nan_in_a_completing_patch_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    mallory = await make_key("org-m", "mallory") | JSON
    job = (await http.post("/v1/jobs", headers=mallory, json={"status": "running"})).json()
    before = await snapshot(http, mallory)
    body = '{"stop_reason":"end_turn","metadata":{"x":NaN}}'
    response = await http.patch(f"/v1/jobs/{job['id']}", headers=mallory, content=body)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "metadata.x is nan; only finite numbers are JSON",
    }
    assert await snapshot(http, mallory) == before
    # Another organization is not touched by it.
    alice = await make_key("org-a", "alice") | JSON
    created = await http.post("/v1/jobs", headers=alice, json={"status": "running"})
    assert created.status_code == 201
    done = await http.patch(
        f"/v1/jobs/{created.json()['id']}", headers=alice, json={"stop_reason": "end_turn"}
    )
    assert done.json()["status"] == "completed"
    assert (await http.get("/v1/jobs?metadata.k=v", headers=alice)).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "where"),
    [
        ("POST", "/v1/jobs", '{"metadata":{"x":Infinity}}', "metadata.x is inf"),
        ("PATCH", "/v1/jobs/{id}", '{"metadata":{"x":[-Infinity]}}', r"metadata.x[0] is -inf"),
        ("POST", "/v1/jobs/{id}/heartbeat", '{"progress":{"p":NaN}}', "progress.p is nan"),
        ("POST", "/v1/jobs/{id}/steps", '{"status":"success","metadata":{"s":NaN}}', "s is nan"),
        ("POST", "/v1/jobs", '{"metadata":{"n":123456789012345678901234567890}}', "64 bits"),
        ("POST", "/v1/jobs", '{"metadata":{"t":"a\\u0000b"}}', "NUL"),
        ("POST", "/v1/jobs", '{"metadata":{"t":"\\ud800"}}', "surrogate"),
        ("POST", "/v1/jobs", '{"metadata":' + deep(270) + "}", "deeper than 32 levels"),
        ("PATCH", "/v1/jobs/{id}", '{"metadata":' + deep(40) + "}", "deeper than 32 levels"),
    ],
)
async def test_json_outside_the_policy_is_a_422_on_every_route(
    http: httpx.AsyncClient, make_key: MakeKey, method: str, path: str, body: str, where: str
) -> None:
    headers = await make_key("org-m", "mallory") | JSON
    job = (await http.post("/v1/jobs", headers=headers, json={"status": "running"})).json()
    before = await snapshot(http, headers)
    response = await http.request(method, path.format(id=job["id"]), headers=headers, content=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert where in response.json()["error"]["message"]
    assert await snapshot(http, headers) == before


@pytest.mark.parametrize("levels", [300, 970, 10_000])
async def test_any_nesting_is_a_4xx_that_stores_nothing(
    http: httpx.AsyncClient, make_key: MakeKey, levels: int
) -> None:
    headers = await make_key("org-m", "mallory") | JSON
    response = await http.post(
        "/v1/jobs", headers=headers, content='{"metadata":' + deep(levels) + "}"
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] in ("bad_request", "validation_error")
    assert (await http.get("/v1/jobs/count", headers=headers)).json()["total"] == 0
    assert (await http.get("/v1/jobs", headers=headers)).json() == []


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/v1/jobs", {"deadline_at": "0001-01-01T00:00:00+14:00"}),
        ("POST", "/v1/jobs", {"deadline_at": "9999-12-31T23:59:59-14:00"}),
        ("GET", "/v1/jobs?created_after=0001-01-01T00:00:00%2B14:00", None),
        ("GET", "/v1/jobs?created_before=9999-12-31T23:59:59-14:00", None),
        ("GET", "/v1/jobs/count?created_before=9999-12-31T23:59:59-14:00", None),
        ("POST", "/v1/jobs", {"timeout_s": 1e300}),
        ("POST", "/v1/jobs", {"heartbeat_timeout_s": 1e300}),
    ],
)
async def test_moments_and_periods_out_of_range_are_422(
    http: httpx.AsyncClient, make_key: MakeKey, method: str, url: str, body: object
) -> None:
    headers = await make_key("org-m", "mallory")
    response = await http.request(method, url, headers=headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert (await http.get("/v1/jobs/count", headers=headers)).json()["total"] == 0


@pytest.mark.parametrize(
    "query", ["metadata.k=a%00b", "job_type=a%00", "source_id=%00", "before=job-%00"]
)
async def test_a_nul_in_a_query_is_the_same_422_on_both_databases(
    http: httpx.AsyncClient, make_key: MakeKey, query: str
) -> None:
    headers = await make_key("org-m", "mallory")
    response = await http.get(f"/v1/jobs?{query}", headers=headers)
    assert response.status_code == 422
    assert "NUL character" in response.json()["error"]["message"]


async def test_a_job_id_with_a_nul_is_not_found(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    headers = await make_key("org-m", "mallory")
    for method in ("GET", "DELETE"):
        response = await http.request(method, "/v1/jobs/job-%00", headers=headers)
        assert response.status_code == 404
    response = await http.post("/v1/jobs/job-%00/cancel", headers=headers)
    assert response.status_code == 404


async def test_a_chunked_body_past_the_limit_is_413(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-m", "mallory") | JSON

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"metadata":{"x":"'
        for _ in range(32):
            yield b"x" * 65536
        yield b'"}}'

    response = await http.post("/v1/jobs", headers=headers, content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.headers["connection"] == "close"

    async def small() -> AsyncIterator[bytes]:
        yield b'{"job_type":'
        yield b'"chunked"}'

    created = await http.post("/v1/jobs", headers=headers, content=small())
    assert created.status_code == 201
    assert created.json()["job_type"] == "chunked"


async def test_an_unexpected_error_is_a_500_with_an_id_that_closes_the_connection(
    app: FastAPI,
    make_key: MakeKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: object) -> None:
        raise RuntimeError("secret internals")

    headers = await make_key("org-m", "mallory")
    monkeypatch.setattr(app.state.jobs, "get_job", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as client:
        response = await client.get("/v1/jobs/job-1", headers=headers)
    assert response.status_code == 500
    correlation = response.headers["x-correlation-id"]
    assert response.headers["connection"] == "close"
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error",
            "correlation_id": correlation,
        }
    }
    assert "secret internals" not in response.text
    assert any(correlation in record.getMessage() for record in caplog.records)
