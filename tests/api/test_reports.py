"""POST /v1/jobs/reports on SQLite and PostgreSQL: many tasks' reports in one request, each
applied to the job its idempotency key names (made if missing), in order for one key, each
answered on its own; a bad report never loses the others; tenants, bounds and tokens hold.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from jobpulse import Actor, JobManager
from jobpulse.reports.rules import MAX_REPORTS
from tests.conftest import MakeKey

PATH = "/v1/jobs/reports"
ALICE = Actor("org-a", "alice")


def report(key: str, status: str = "pending", **change: Any) -> dict[str, Any]:
    """A report of task `key`, whose job is made `status` if missing."""
    body: dict[str, Any] = {
        "idempotency_key": key,
        "job": {"job_type": "send_mail", "status": status, "metadata": {"task_id": key}},
    }
    return body | change


async def post(http: httpx.AsyncClient, headers: dict[str, str], *reports: Any) -> Any:
    answer = await http.post(PATH, json={"reports": list(reports)}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


async def history(http: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> list[Any]:
    events = (await http.get(f"/v1/jobs/{job_id}/events", headers=headers)).json()
    return [(e["from_status"], e["to_status"], e["reason"], e["applied"]) for e in events]


async def test_the_reports_of_many_tasks_become_their_jobs_in_order(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    retry = {"metadata": {"attempts": 2}, "reason": "retry after attempt 1"}
    error = {"error_type": "KeyError", "error_message": "'x'"}
    results = await post(
        http,
        headers,
        report("t1"),
        report("t2"),
        report("t1", update={"status": "running", "metadata": {"attempts": 1}}),
        report("t2", update={"status": "running"}),
        report("t1", update=retry),
        report("t2", update={"status": "completed"}),
        report("t1", update={"stop_reason": "error", "metadata": error}),
    )

    t1, t2 = results[0]["job_id"], results[1]["job_id"]
    assert t1 != t2
    assert [(r["idempotency_key"], r["job_id"], r["status"]) for r in results] == [
        ("t1", t1, "pending"),
        ("t2", t2, "pending"),
        ("t1", t1, "running"),
        ("t2", t2, "running"),
        ("t1", t1, "running"),
        ("t2", t2, "completed"),
        ("t1", t1, "failed"),
    ]
    job = (await http.get(f"/v1/jobs/{t1}", headers=headers)).json()
    assert (job["job_type"], job["status"], job["stop_reason"]) == ("send_mail", "failed", "error")
    assert job["metadata"] == {"task_id": "t1", "attempts": 2} | error
    assert await history(http, headers, t1) == [
        (None, "pending", "created", True),
        ("pending", "running", None, True),
        ("running", "running", "retry after attempt 1", True),
        ("running", "failed", None, True),
    ]
    assert [e[1] for e in await history(http, headers, t2)] == ["pending", "running", "completed"]


async def test_a_worker_alone_makes_its_job_running_with_one_event(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    started = {"status": "running", "metadata": {"attempts": 1}}
    created = report("solo", "running") | {"job": report("solo", "running")["job"]}
    created["job"]["metadata"] |= {"attempts": 1}
    [running, done] = await post(
        http, headers, created | {"update": started}, report("solo", update={"status": "completed"})
    )
    assert (running["status"], done["status"]) == ("running", "completed")
    assert await history(http, headers, done["job_id"]) == [
        (None, "running", "created", True),
        ("running", "completed", None, True),
    ]


async def test_a_request_sent_again_changes_nothing_twice(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    reports = [
        report("again"),
        report("again", update={"status": "running", "metadata": {"attempts": 1}}),
        report("again", update={"status": "completed"}),
    ]
    first = await post(http, headers, *reports)
    job_id = first[0]["job_id"]
    before = (await http.get(f"/v1/jobs/{job_id}", headers=headers)).json()
    events = await history(http, headers, job_id)

    second = await post(http, headers, *reports)  # its first answer was lost, say

    assert [r["job_id"] for r in second] == [job_id] * 3
    assert second[0]["status"] == second[2]["status"] == "completed"
    assert second[1]["error"] == {
        "code": "invalid_transition",
        "message": "job is already completed; a report of running changes nothing",
        "current_status": "completed",
        "requested_status": "running",
    }
    assert (await http.get(f"/v1/jobs/{job_id}", headers=headers)).json() == before
    assert await history(http, headers, job_id) == events, "no rejected attempt recorded"


async def test_a_cancelled_job_answers_its_tasks_reports_so(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    [made] = await post(http, headers, report("long", "running"))
    cancel = await http.post(f"/v1/jobs/{made['job_id']}/cancel", headers=headers)
    assert cancel.status_code == 200

    beat, note, revoked = await post(
        http,
        headers,
        report("long", heartbeat={"progress": {"step": 3}}),
        report("long", update={"metadata": {"attempts": 2}, "reason": "retry"}),
        report("long", update={"status": "cancelled", "stop_reason": "cancelled"}),
    )

    for refused in (beat, note):
        assert refused["job_id"] == made["job_id"]
        assert refused["error"]["code"] == "job_cancelled"
        assert refused["error"]["current_status"] == "cancelled"
    assert revoked["status"] == "cancelled"
    job = (await http.get(f"/v1/jobs/{made['job_id']}", headers=headers)).json()
    assert job["metadata"] == {"task_id": "long"}
    assert [e[1] for e in await history(http, headers, made["job_id"])] == ["running", "cancelled"]


async def test_a_heartbeat_report_stamps_liveness_and_progress(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    [beat] = await post(http, headers, report("beat", "running", heartbeat={"progress": {"p": 1}}))
    job = (await http.get(f"/v1/jobs/{beat['job_id']}", headers=headers)).json()
    assert job["heartbeat_at"] is not None
    assert job["metadata"] == {"task_id": "beat", "p": 1}


async def test_a_bad_report_is_answered_alone_and_the_others_apply(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    results = await post(
        http,
        headers,
        report("ok-1"),
        5,
        report("bad-status", "done"),
        report("too-big", update={"metadata": {"blob": "x" * 70_000}}),
        report("both", update={"status": "running"}, heartbeat={}),
        report("contradiction", update={"status": "completed", "stop_reason": "error"}),
        report("nul\x00key"),
        {"idempotency_key": "no-job"},
        report("unknown", extra=1),
        report("ok-2", update={"status": "running"}),
    )

    assert [r.get("status") for r in results] == ["pending", *[None] * 8, "running"]
    refused = results[1:-1]
    assert [r["idempotency_key"] for r in refused] == [
        None,
        "bad-status",
        "too-big",
        "both",
        "contradiction",
        "nul\x00key",
        "no-job",
        "unknown",
    ]
    assert {r["error"]["code"] for r in refused} == {"validation_error"}
    assert {r["job_id"] for r in refused} == {None}, "a refused report makes no job"
    messages = [r["error"]["message"] for r in refused]
    assert messages[0] == "a report is a JSON object"
    assert messages[1].startswith("job.status: Input should be 'created', 'pending' or")
    assert messages[2] == "metadata is 70011 bytes; the limit is 65536"
    assert messages[3] == "Value error, give update or heartbeat, not both"
    assert messages[4] == "stop_reason error means status failed, not completed"
    assert "NUL" in messages[5]
    assert messages[6] == "job: Field required"
    assert messages[7] == "extra: Extra inputs are not permitted"
    listed = (await http.get("/v1/jobs", headers=headers)).json()
    assert sorted(job["metadata"]["task_id"] for job in listed) == ["ok-1", "ok-2"]


async def test_keys_are_each_callers_own(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    [mine] = await post(http, alice, report("shared", "running"))
    for who in (("org-a", "bob"), ("org-a", "root", True), ("org-b", "carol")):
        headers = await make_key(*who)
        [theirs] = await post(http, headers, report("shared", update={"status": "cancelled"}))
        assert theirs["job_id"] != mine["job_id"]
        assert theirs["status"] == "cancelled"
    jobs: JobManager = app.state.jobs
    assert (await jobs.get_job(ALICE, mine["job_id"])).status == "running"


async def test_the_number_of_reports_is_bounded(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    headers = await make_key("org-a", "alice")
    many = [report(f"t{n}") for n in range(MAX_REPORTS + 1)]
    answer = await http.post(PATH, json={"reports": many}, headers=headers)
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "payload_too_large",
        "message": f"at most {MAX_REPORTS} reports a request, not {MAX_REPORTS + 1}: "
        "send the others in another request",
    }
    count = (await http.get("/v1/jobs/count", headers=headers)).json()
    assert count["total"] == 0
    results = await post(http, headers, *many[:MAX_REPORTS])
    assert len({r["job_id"] for r in results}) == MAX_REPORTS


async def test_a_body_that_is_not_reports_is_refused_whole(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    headers = await make_key("org-a", "alice")
    for body in ({}, {"reports": {"a": 1}}, [report("x")], {"reports": [], "more": 1}):
        answer = await http.post(PATH, json=body, headers=headers)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["code"] == "validation_error"
    assert (await http.post(PATH, json={"reports": []}, headers=headers)).json() == {"results": []}


async def test_only_an_api_key_may_report(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    headers = await make_key("org-a", "alice")
    [made] = await post(http, headers, report("t", "running"))
    minted = await http.post("/v1/tokens", json={"job_id": made["job_id"]}, headers=headers)
    token = minted.json()["token"]
    body = {"reports": [report("t", update={"status": "completed"})]}

    as_header = await http.post(PATH, json=body, headers={"Authorization": f"Bearer {token}"})
    as_query = await http.post(PATH, json=body, params={"access_token": token})
    without = await http.post(PATH, json=body)

    assert (as_header.status_code, as_header.json()["error"]["code"]) == (403, "forbidden")
    assert (as_query.status_code, as_query.json()["error"]["code"]) == (403, "forbidden")
    assert (without.status_code, without.json()["error"]["code"]) == (401, "unauthorized")
    job = (await http.get(f"/v1/jobs/{made['job_id']}", headers=headers)).json()
    assert job["status"] == "running"


async def test_the_route_is_in_openapi(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    operation = document["paths"][PATH]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ReportsRequest"}
    schemas = document["components"]["schemas"]
    items = schemas["ReportsRequest"]["properties"]["reports"]["items"]
    assert items == {"$ref": "#/components/schemas/ReportCreate"}
    assert set(schemas["ReportCreate"]["properties"]) == {
        "idempotency_key",
        "job",
        "update",
        "heartbeat",
    }
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/ReportsPublic"}
    assert {"413", "422", "401", "403"} <= set(operation["responses"])
