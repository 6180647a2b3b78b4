"""/metrics after a job flow says exactly what the flow did."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from jobpulse import Settings
from jobpulse.api import create_app
from tests.conftest import MakeKey


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_follow_the_jobs(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")

    async def create(job_type: str, status: str) -> str:
        response = await http.post(
            "/v1/jobs", json={"job_type": job_type, "status": status}, headers=me
        )
        return str(response.json()["id"])

    first = await create("agent", "pending")
    await http.patch(f"/v1/jobs/{first}", json={"status": "running"}, headers=me)
    await http.post(f"/v1/jobs/{first}/first-token", headers=me)
    await http.patch(f"/v1/jobs/{first}", json={"stop_reason": "end_turn"}, headers=me)
    second = await create("agent", "running")
    await http.patch(f"/v1/jobs/{second}", json={"stop_reason": "llm_api_error"}, headers=me)
    refused = await http.patch(f"/v1/jobs/{second}", json={"status": "running"}, headers=me)
    assert refused.status_code == 409  # a rejected attempt counts nowhere
    third = await create("batch", "created")
    await http.post(f"/v1/jobs/{third}/cancel", headers=me)
    await create("batch", "pending")

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return got.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("jobpulse_jobs_created_total", job_type="agent") == 2
    assert value("jobpulse_jobs_created_total", job_type="batch") == 2
    transitions = {
        key[1]: number for key, number in got.items() if key[0] == "jobpulse_job_transitions_total"
    }
    assert transitions == {
        (("from_status", "pending"), ("job_type", "agent"), ("to_status", "running")): 1,
        (("from_status", "running"), ("job_type", "agent"), ("to_status", "completed")): 1,
        (("from_status", "running"), ("job_type", "agent"), ("to_status", "failed")): 1,
        (("from_status", "created"), ("job_type", "batch"), ("to_status", "cancelled")): 1,
    }
    assert value("jobpulse_job_ttft_seconds_count", job_type="agent") == 1
    ended = {}
    for job_id in (first, second, third):
        job = (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()
        ended[job_id] = job
    assert value("jobpulse_job_ttft_seconds_sum", job_type="agent") == pytest.approx(
        ended[first]["ttft_ns"] / 1e9
    )
    for job in ended.values():
        labels = {"job_type": job["job_type"], "status": job["status"]}
        assert value("jobpulse_job_duration_seconds_count", **labels) == 1
        assert value("jobpulse_job_duration_seconds_sum", **labels) == pytest.approx(
            job["total_duration_ns"] / 1e9
        )
    assert value("jobpulse_job_ttft_seconds_bucket", job_type="agent", le="300.0") == 1
    assert value("jobpulse_jobs_active", status="pending") == 1
    assert value("jobpulse_jobs_active", status="running") == 0
    assert value("jobpulse_jobs_stuck") == 0
    assert value("jobpulse_outbox_pending") == 0
    served = {"method": "PATCH", "route": "/v1/jobs/{job_id}", "status": "200"}
    assert value("jobpulse_http_request_duration_seconds_count", **served) == 3
    refused_labels = served | {"status": "409"}
    assert value("jobpulse_http_request_duration_seconds_count", **refused_labels) == 1


@pytest.fixture
async def guarded(database_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(
        database_url=database_url, metrics_token="scrape-me", metrics_job_types_max=3
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_metrics_need_the_token_when_one_is_set(guarded: FastAPI) -> None:
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
            refused = await http.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert "jobpulse_" not in refused.text
        allowed = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert allowed.status_code == 200
        assert "jobpulse_jobs_active" in allowed.text


async def test_job_type_labels_are_bounded(guarded: FastAPI) -> None:
    _key, secret = await guarded.state.keys.create(organization_id="org-a", user_id="alice")
    me = {"Authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as http:
        for n in range(300):
            created = await http.post("/v1/jobs", json={"job_type": f"type-{n}"}, headers=me)
            assert created.status_code == 201
        text = (await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).text
    created_by_type = {
        labels: value
        for (name, labels), value in samples(text).items()
        if name == "jobpulse_jobs_created_total"
    }
    assert created_by_type == {
        (("job_type", "type-0"),): 1,
        (("job_type", "type-1"),): 1,
        (("job_type", "type-2"),): 1,
        (("job_type", "other"),): 297,
    }
