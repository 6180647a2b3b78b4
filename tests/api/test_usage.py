"""LLM usage through the API on SQLite and PostgreSQL: records, the job's totals, costs from
the price table, late calls on ended jobs, bad input and tenancy.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_api import error_of
from tests.api.test_metrics import samples
from tests.conftest import MakeKey

Headers = dict[str, str]
SONNET = {"provider": "anthropic", "model": "claude-sonnet-4-5"}


async def _job(http: httpx.AsyncClient, me: Headers, status: str = "running") -> str:
    created = await http.post("/v1/jobs", json={"status": status}, headers=me)
    assert created.status_code == 201, created.text
    job_id: str = created.json()["id"]
    return job_id


async def _record(http: httpx.AsyncClient, me: Headers, job_id: str, **body: Any) -> httpx.Response:
    return await http.post(f"/v1/jobs/{job_id}/usage", json=body, headers=me)


async def test_calls_add_up_on_the_job_by_model(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")
    job_id = await _job(http, me)
    assert (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()["usage"] is None
    first = await _record(
        http, me, job_id, **SONNET, input_tokens=1000, output_tokens=500,
        cache_read_tokens=2000, cache_write_tokens=100, ttft_ns=250_000_000,
        duration_ns=2_000_000_000,
    )  # fmt: skip
    assert first.status_code == 201, first.text
    call = first.json()
    # 1000 x $3 + 500 x $15 + 2000 x $0.30 + 100 x $3.75, per million tokens
    assert call["cost_usd"] == pytest.approx(0.011475, abs=1e-12)
    assert (call["cost_source"], call["late"], call["job_id"]) == ("prices", False, job_id)
    assert (call["ttft_ns"], call["duration_ns"]) == (250_000_000, 2_000_000_000)
    second = await _record(
        http, me, job_id, provider="openai", model="gpt-4.1", input_tokens=10, cost_usd=0.5
    )
    assert second.json()["cost_usd"] == 0.5
    assert second.json()["cost_source"] == "caller"
    assert second.json()["output_tokens"] == 0
    await _record(http, me, job_id, **SONNET, output_tokens=1_000_000)
    usage = (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()["usage"]
    assert usage == {
        "calls": 3,
        "input_tokens": 1010,
        "output_tokens": 1_000_500,
        "cache_read_tokens": 2000,
        "cache_write_tokens": 100,
        "cost_usd": pytest.approx(0.011475 + 0.5 + 15),
        "by_model": {
            "anthropic/claude-sonnet-4-5": {
                "calls": 2,
                "input_tokens": 1000,
                "output_tokens": 1_000_500,
                "cache_read_tokens": 2000,
                "cache_write_tokens": 100,
                "cost_usd": pytest.approx(15.011475),
            },
            "openai/gpt-4.1": {
                "calls": 1,
                "input_tokens": 10,
                "output_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "cost_usd": 0.5,
            },
        },
    }
    listed = (await http.get(f"/v1/jobs/{job_id}/usage", headers=me)).json()
    assert [c["id"] for c in listed] == [call["id"], second.json()["id"], listed[2]["id"]]
    assert listed[0] == call
    # The totals are on the job wherever it is shown.
    [in_list] = (await http.get("/v1/jobs", headers=me)).json()
    assert in_list["usage"]["calls"] == 3
    patched = await http.patch(f"/v1/jobs/{job_id}", json={"metadata": {"a": 1}}, headers=me)
    assert patched.json()["usage"]["calls"] == 3


async def test_an_unpriced_model_keeps_its_tokens_and_an_unknown_cost(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job_id = await _job(http, me)
    await _record(http, me, job_id, **SONNET, input_tokens=100)
    unknown = await _record(
        http, me, job_id, provider="anthropic", model="claude-sonnet-4-5-29991231", input_tokens=7
    )
    assert unknown.status_code == 201
    assert (unknown.json()["cost_usd"], unknown.json()["cost_source"]) == (None, None)
    usage = (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()["usage"]
    assert (usage["input_tokens"], usage["cost_usd"]) == (107, None)
    assert usage["by_model"]["anthropic/claude-sonnet-4-5"]["cost_usd"] == pytest.approx(0.0003)
    assert usage["by_model"]["anthropic/claude-sonnet-4-5-29991231"]["cost_usd"] is None
    # A known cost after an unknown one leaves the total unknown.
    await _record(http, me, job_id, **SONNET, input_tokens=1)
    assert (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()["usage"]["cost_usd"] is None


async def test_a_call_id_is_recorded_once(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")
    job_id = await _job(http, me)
    body = {**SONNET, "call_id": "msg_01", "input_tokens": 5}
    first = await _record(http, me, job_id, **body)
    again = await _record(http, me, job_id, **body | {"input_tokens": 9})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    usage = (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()["usage"]
    assert (usage["calls"], usage["input_tokens"]) == (1, 5)


async def test_late_usage_on_an_ended_job_is_kept_and_noted(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job_id = await _job(http, me)
    await _record(http, me, job_id, **SONNET, output_tokens=10)
    done = await http.patch(f"/v1/jobs/{job_id}", json={"stop_reason": "end_turn"}, headers=me)
    assert done.json()["status"] == "completed"
    late = await _record(http, me, job_id, **SONNET, output_tokens=32)
    assert late.status_code == 201, late.text
    assert late.json()["late"] is True
    job = (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()
    assert (job["status"], job["usage"]["output_tokens"], job["usage"]["calls"]) == (
        "completed",
        42,
        2,
    )
    events = (await http.get(f"/v1/jobs/{job_id}/events", headers=me)).json()
    last = events[-1]
    assert (last["from_status"], last["to_status"], last["applied"]) == (
        "completed",
        "completed",
        True,
    )
    assert "after the job ended" in last["reason"]
    assert "anthropic/claude-sonnet-4-5" in last["reason"]
    assert [e["to_status"] for e in events] == ["running", "completed", "completed"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({**SONNET}, "at least one token count"),
        ({**SONNET, "input_tokens": -1}, "input_tokens"),
        ({**SONNET, "input_tokens": 1.5}, "input_tokens"),
        ({**SONNET, "input_tokens": "12"}, "input_tokens"),
        ({**SONNET, "output_tokens": True}, "output_tokens"),
        ({**SONNET, "input_tokens": 1, "cost_usd": -0.01}, "cost_usd"),
        ({**SONNET, "input_tokens": 1, "ttft_ns": -5}, "ttft_ns"),
        ({"provider": "anthropic", "input_tokens": 1}, "model"),
        ({**SONNET, "input_tokens": 1, "model": ""}, "model"),
        ({**SONNET, "input_tokens": 1, "colour": "red"}, "colour"),
        ({**SONNET, "input_tokens": 1, "model": "bad\x00model"}, "model"),
    ],
)
async def test_bad_calls_are_refused_and_lose_nothing(
    http: httpx.AsyncClient, make_key: MakeKey, body: dict[str, Any], problem: str
) -> None:
    me = await make_key("org-a", "alice")
    job_id = await _job(http, me)
    await _record(http, me, job_id, **SONNET, input_tokens=3)
    error = error_of(await _record(http, me, job_id, **body), 422, "validation_error")
    assert problem in str(error)
    assert (await http.get(f"/v1/jobs/{job_id}", headers=me)).json()["usage"]["calls"] == 1
    assert len((await http.get(f"/v1/jobs/{job_id}/usage", headers=me)).json()) == 1


async def test_other_tenants_cannot_see_or_add_usage(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    bob = await make_key("org-a", "bob")
    admin = await make_key("org-a", "root", admin=True)
    mallory = await make_key("org-b", "mallory", admin=True)
    job_id = await _job(http, alice)
    await _record(http, alice, job_id, **SONNET, input_tokens=3)
    for outsider in (bob, mallory):
        error_of(await _record(http, outsider, job_id, **SONNET, input_tokens=1), 404, "not_found")
        error_of(await http.get(f"/v1/jobs/{job_id}/usage", headers=outsider), 404, "not_found")
    error_of(await _record(http, alice, "job-nope", **SONNET, input_tokens=1), 404, "not_found")
    assert (await _record(http, admin, job_id, **SONNET, input_tokens=1)).status_code == 201
    usage = (await http.get(f"/v1/jobs/{job_id}", headers=alice)).json()["usage"]
    assert (usage["calls"], usage["input_tokens"]) == (2, 4)
    error_of(await http.post(f"/v1/jobs/{job_id}/usage", json={}), 401, "unauthorized")


async def test_stats_and_the_model_filter_show_the_calls(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice", admin=True)
    job_id = await _job(http, me)
    other = await _job(http, me)
    await _record(
        http, me, job_id, **SONNET, input_tokens=1000, output_tokens=400,
        ttft_ns=300_000_000, duration_ns=2_000_000_000,
    )  # fmt: skip
    await _record(
        http, me, other, provider="acme", model="x-1", output_tokens=100, duration_ns=10**9
    )
    stats = (await http.get("/v1/stats", headers=me)).json()
    usage = stats["usage"]
    assert (usage["calls"], usage["input_tokens"], usage["output_tokens"]) == (2, 1000, 500)
    assert (usage["cost_usd"], usage["unpriced_calls"]) == (pytest.approx(0.009), 1)
    assert sum(point["output_tokens"] for point in usage["series"]) == 500
    sonnet = usage["by_model"]["anthropic/claude-sonnet-4-5"]
    assert (sonnet["calls"], sonnet["ttft"]["count"], sonnet["output_tokens_per_s"]) == (
        1,
        1,
        200.0,
    )
    assert 0.25 <= sonnet["ttft"]["p50"] <= 0.5  # the bucket of 0.3 s
    assert usage["by_model"]["acme/x-1"]["cost_usd"] == 0
    assert usage["by_job_type"]["job"]["calls"] == 2
    only = (await http.get("/v1/stats", params={"model": "x-1"}, headers=me)).json()
    assert (only["total"], only["usage"]["calls"], list(only["usage"]["by_model"])) == (
        1,
        1,
        ["acme/x-1"],
    )
    listed = (await http.get("/v1/jobs", params={"model": "claude-sonnet-4-5"}, headers=me)).json()
    assert [job["id"] for job in listed] == [job_id]
    count = (await http.get("/v1/jobs/count", params={"model": "x-1"}, headers=me)).json()
    assert count["total"] == 1


async def test_metrics_count_tokens_and_cost(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")
    job_id = await _job(http, me)
    await _record(http, me, job_id, **SONNET, input_tokens=1000, output_tokens=10)
    await _record(http, me, job_id, **SONNET, input_tokens=500, cache_read_tokens=7)
    await _record(http, me, job_id, provider="acme", model="x-1", output_tokens=3)
    await _record(http, me, job_id, **SONNET | {"call_id": "c1"}, output_tokens=1)
    await _record(http, me, job_id, **SONNET | {"call_id": "c1"}, output_tokens=1)  # a repeat
    seen = samples((await http.get("/metrics")).text)
    sonnet = (("kind", "input"), ("model", "claude-sonnet-4-5"), ("provider", "anthropic"))
    assert seen[("jobpulse_llm_tokens_total", sonnet)] == 1500
    output = (("kind", "output"), ("model", "claude-sonnet-4-5"), ("provider", "anthropic"))
    assert seen[("jobpulse_llm_tokens_total", output)] == 11
    read = (("kind", "cache_read"), ("model", "claude-sonnet-4-5"), ("provider", "anthropic"))
    assert seen[("jobpulse_llm_tokens_total", read)] == 7
    acme = (("kind", "output"), ("model", "x-1"), ("provider", "acme"))
    assert seen[("jobpulse_llm_tokens_total", acme)] == 3
    cost = (("model", "claude-sonnet-4-5"), ("provider", "anthropic"))
    # $3 x 1500 + $15 x 11 + $0.30 x 7, per million tokens
    assert seen[("jobpulse_llm_cost_usd_total", cost)] == pytest.approx(0.0046671)
    assert ("jobpulse_llm_cost_usd_total", (("model", "x-1"), ("provider", "acme"))) not in seen
