"""The HTTP API on SQLite and PostgreSQL: status codes, error bodies, tenancy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MakeKey

Headers = dict[str, str]


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


async def test_a_job_through_the_api(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")
    created = await http.post(
        "/v1/jobs", json={"job_type": "agent", "status": "pending"}, headers=me
    )
    assert created.status_code == 201
    job = created.json()
    assert (job["status"], job["job_type"], job["user_id"]) == ("pending", "agent", "alice")
    assert job["created_at"].endswith("Z")
    url = f"/v1/jobs/{job['id']}"
    assert (await http.patch(url, json={"status": "running"}, headers=me)).json()["started_at"]
    assert (await http.post(f"{url}/first-token", headers=me)).json()["ttft_ns"] >= 0
    beat = await http.post(f"{url}/heartbeat", json={"progress": {"step": 1}}, headers=me)
    assert beat.json()["metadata"] == {"step": 1}
    done = await http.patch(url, json={"stop_reason": "end_turn"}, headers=me)
    assert (done.json()["status"], done.json()["stop_reason"]) == ("completed", "end_turn")
    again = await http.patch(url, json={"status": "running"}, headers=me)
    error = error_of(again, 409, "invalid_transition")
    assert (error["current_status"], error["requested_status"]) == ("completed", "running")
    error_of(await http.post(f"{url}/cancel", headers=me), 409, "invalid_transition")
    events = (await http.get(f"{url}/events", headers=me)).json()
    assert [(e["from_status"], e["to_status"], e["applied"]) for e in events] == [
        (None, "pending", True),
        ("pending", "running", True),
        ("running", "completed", True),
        ("completed", "running", False),
        ("completed", "cancelled", False),
    ]
    count = (await http.get("/v1/jobs/count", headers=me)).json()
    assert count["total"] == 1
    assert count["by_status"]["completed"] == 1
    assert (await http.delete(url, headers=me)).status_code == 204
    error_of(await http.get(url, headers=me), 404, "not_found")


async def test_idempotency_key_returns_the_same_job(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice") | {"Idempotency-Key": "abc"}
    first = await http.post("/v1/jobs", json={}, headers=me)
    second = await http.post("/v1/jobs", json={}, headers=me)
    assert first.json()["id"] == second.json()["id"]
    assert (await http.get("/v1/jobs/count", headers=me)).json()["total"] == 1


async def test_list_filters_and_cursors(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")
    ids = []
    for n in range(5):
        body = {"metadata": {"source_id": f"s{n % 2}", "team": "red"}, "status": "running"}
        ids.append((await http.post("/v1/jobs", json=body, headers=me)).json()["id"])
    await http.post(f"/v1/jobs/{ids[0]}/cancel", json={"reason": "no"}, headers=me)
    page = await http.get(
        "/v1/jobs", params={"before": ids[4], "limit": 2, "ascending": "true"}, headers=me
    )
    assert [job["id"] for job in page.json()] == ids[2:4]
    query = [("status", "running"), ("status", "cancelled"), ("source_id", "s0")]
    found = await http.get("/v1/jobs", params=tuple(query), headers=me)
    assert {job["id"] for job in found.json()} == {ids[0], ids[2], ids[4]}
    by_meta = await http.get(
        "/v1/jobs", params={"metadata.team": "red", "active": "false"}, headers=me
    )
    assert [job["id"] for job in by_meta.json()] == [ids[0]]
    count = await http.get("/v1/jobs/count", params={"active": "true"}, headers=me)
    assert count.json()["total"] == 4


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        (
            "POST",
            "/v1/jobs",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "validation_error",
        ),
        ("POST", "/v1/jobs", {"json": {"status": "completed"}}, 422, "validation_error"),
        ("POST", "/v1/jobs", {"json": {"metadata": [1, 2]}}, 422, "validation_error"),
        ("POST", "/v1/jobs", {"json": {"background": "often"}}, 422, "validation_error"),
        ("POST", "/v1/jobs", {"json": {"surprise": 1}}, 422, "validation_error"),
        ("POST", "/v1/jobs", {"json": {"job_type": "llm_batch"}}, 422, "validation_error"),
        ("POST", "/v1/jobs", {"json": {"stale_after_s": 0}}, 422, "validation_error"),
        (
            "POST",
            "/v1/jobs",
            {
                "json": {
                    "job_type": "llm_batch",
                    "metadata": {"provider": "gemini", "batch_id": "b"},
                }
            },
            422,
            "validation_error",
        ),
        (
            "POST",
            "/v1/jobs",
            {"json": {"job_type": "llm_batch", "metadata": {"provider": "openai", "batch_id": 7}}},
            422,
            "validation_error",
        ),
        *(
            (
                "POST",
                "/v1/jobs",
                {"json": {"job_type": "llm_batch", "metadata": {"provider": p, "batch_id": b}}},
                422,
                "validation_error",
            )
            for p, b in (("anthropic", "."), ("openai", ".."), ("openai", "batch_1/../x"))
        ),
        ("POST", "/v1/jobs", {"json": {"metadata": {"k": "x" * 70_000}}}, 422, "validation_error"),
        (
            "POST",
            "/v1/jobs",
            {"json": {"callback_url": "file:///etc/passwd"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/v1/jobs",
            {"json": {"metadata": {"k": "x" * 1_100_000}}},
            413,
            "payload_too_large",
        ),
        ("PATCH", "{job}", {"json": {"status": "Running"}}, 422, "validation_error"),
        ("PATCH", "{job}", {"json": {"ttft_ns": -1}}, 422, "validation_error"),
        (
            "PATCH",
            "{job}",
            {"json": {"status": "completed", "stop_reason": "error"}},
            422,
            "validation_error",
        ),
        ("PATCH", "{job}", {"json": {"status": "created"}}, 409, "invalid_transition"),
        ("PATCH", "/v1/jobs/job-does-not-exist", {"json": {"status": "running"}}, 404, "not_found"),
        ("GET", "/v1/jobs", {"params": {"status": "done"}}, 422, "validation_error"),
        ("GET", "/v1/jobs", {"params": {"limit": 0}}, 422, "validation_error"),
        ("GET", "/v1/jobs", {"params": {"limit": 1001}}, 422, "validation_error"),
        ("GET", "/v1/jobs", {"params": {"statuss": "running"}}, 422, "validation_error"),
        (
            "GET",
            "/v1/jobs",
            {
                "params": {
                    "created_after": "2030-01-01T00:00:00Z",
                    "created_before": "2020-01-01T00:00:00Z",
                }
            },
            422,
            "validation_error",
        ),
        (
            "GET",
            "/v1/jobs",
            {"params": {"created_after": "2030-01-01T00:00:00"}},
            422,
            "validation_error",
        ),
        ("GET", "/v1/jobs", {"params": {"after": "job-unknown"}}, 400, "invalid_cursor"),
        ("GET", "/v1/jobs/job-unknown/events", {}, 404, "not_found"),
        ("DELETE", "/v1/jobs/job-unknown", {}, 404, "not_found"),
        ("PUT", "/v1/jobs", {}, 405, "method_not_allowed"),
    ],
)
async def test_bad_requests_get_json_errors_and_change_nothing(
    http: httpx.AsyncClient,
    make_key: MakeKey,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    me = await make_key("org-a", "alice")
    job = (
        await http.post("/v1/jobs", json={"status": "running", "metadata": {"a": 1}}, headers=me)
    ).json()
    headers = me | kwargs.pop("headers", {})
    response = await http.request(
        method, path.format(job=f"/v1/jobs/{job['id']}"), headers=headers, **kwargs
    )
    error_of(response, status, code)
    assert (await http.get(f"/v1/jobs/{job['id']}", headers=me)).json() == job
    assert (await http.get("/v1/jobs/count", headers=me)).json()["total"] == 1


async def test_keys_are_required_and_revocable(
    http: httpx.AsyncClient, make_key: MakeKey, app: Any
) -> None:
    missing = await http.get("/v1/jobs")
    error_of(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    error_of(
        await http.get("/v1/jobs", headers={"Authorization": "Basic abc"}), 401, "unauthorized"
    )
    error_of(
        await http.get("/v1/jobs", headers={"Authorization": "Bearer jp_nope"}), 401, "unauthorized"
    )
    me = await make_key("org-a", "alice")
    assert (await http.get("/v1/jobs", headers=me)).status_code == 200
    [key] = await app.state.keys.list()
    await app.state.keys.revoke(key.id)
    error_of(await http.get("/v1/jobs", headers=me), 401, "unauthorized")


OWNER = ("org-a", "alice", False)
VIEWERS = {
    "the owner": (OWNER, True),
    "a member of the same org": (("org-a", "bob", False), False),
    "an admin of the same org": (("org-a", "root", True), True),
    "a member of another org": (("org-b", "alice", False), False),
    "an admin of another org": (("org-b", "root", True), False),
}


@pytest.mark.parametrize("viewer", list(VIEWERS))
async def test_tenancy_matrix(http: httpx.AsyncClient, make_key: MakeKey, viewer: str) -> None:
    owner = await make_key(*OWNER)
    (org, user, admin), visible = VIEWERS[viewer]
    them = owner if viewer == "the owner" else await make_key(org, user, admin)
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=owner)).json()
    url = f"/v1/jobs/{job['id']}"
    attempts = {
        "get": await http.get(url, headers=them),
        "patch": await http.patch(url, json={"metadata": {"by": user}}, headers=them),
        "events": await http.get(f"{url}/events", headers=them),
        "cursor": await http.get("/v1/jobs", params={"before": job["id"]}, headers=them),
    }
    listed = [j["id"] for j in (await http.get("/v1/jobs", headers=them)).json()]
    counted = (await http.get("/v1/jobs/count", headers=them)).json()["total"]
    if visible:
        assert all(r.status_code == 200 for r in attempts.values())
        assert (listed, counted) == ([job["id"]], 1)
        assert (await http.delete(url, headers=them)).status_code == 204
        return
    for name in ("get", "patch", "events"):
        error_of(attempts[name], 404, "not_found")
    error_of(attempts["cursor"], 400, "invalid_cursor")
    error_of(await http.delete(url, headers=them), 404, "not_found")
    assert (listed, counted) == ([], 0)
    assert (await http.get(url, headers=owner)).json() == job


async def test_health(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json()["status"] == "ok"
    assert (await http.get("/readyz")).json()["status"] == "ready"
    spec = (await http.get("/openapi.json")).json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"create_job", "list_jobs", "update_job", "count_jobs", "list_events"} <= operations


async def test_a_worker_talking_to_a_cancelled_job_is_told_so(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=me)).json()
    await http.post(f"/v1/jobs/{job['id']}/cancel", headers=me)
    for method, path, body in (
        ("POST", "/heartbeat", None),
        ("POST", "/first-token", None),
        ("PATCH", "", {"status": "completed"}),
        ("PATCH", "", {"metadata": {"k": "v"}, "stop_reason": "end_turn"}),
    ):
        response = await http.request(method, f"/v1/jobs/{job['id']}{path}", json=body, headers=me)
        error = error_of(response, 409, "job_cancelled")
        assert error["current_status"] == "cancelled"
    done = await http.post("/v1/jobs", json={"status": "running"}, headers=me)
    await http.patch(f"/v1/jobs/{done.json()['id']}", json={"status": "completed"}, headers=me)
    refused = await http.post(f"/v1/jobs/{done.json()['id']}/heartbeat", headers=me)
    error_of(refused, 409, "invalid_transition")  # ended, but not cancelled
