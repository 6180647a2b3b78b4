"""/v1/alert-rules and /v1/alerts through the app, on SQLite and PostgreSQL: admins keep their
organization's rules, members are refused, bad rules are refused with a clear body and store
nothing, and a rule that fires shows in /v1/alerts until it resolves.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jobpulse.alerts.evaluator import AlertEvaluator
from jobpulse.alerts.rules import RULES_MAX
from tests.api.conftest import MakeKey
from tests.api.test_dashboard_http import signed_in

RULE = {"name": "agents failing", "metric": "failure_rate", "window_s": 300, "above": 0.2}


async def test_an_admin_creates_lists_reads_and_deletes_a_rule(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    body = RULE | {"min_jobs": 5, "job_type": "agent_run", "user_id": "alice"}
    made = await http.post("/v1/alert-rules", json=body, headers=admin)
    assert made.status_code == 201, made.text
    rule = made.json()
    assert rule["id"].startswith("rule-")
    assert {key: rule[key] for key in body} == body
    assert rule["model"] is None
    assert (rule["firing"], rule["firing_alert_id"], rule["created_by"]) == (False, None, "root")
    assert rule["evaluated_at"] is None

    other = await http.post(
        "/v1/alert-rules", json=RULE | {"name": "slow", "metric": "ttft_p99_s"}, headers=admin
    )
    spend = {"name": "spend", "metric": "cost_usd", "window_s": 86400, "above": 25.0}
    for body in (spend, spend | {"metric": "tokens", "above": 1e6, "model": "gpt-4.1"}):
        made_too = await http.post("/v1/alert-rules", json=body, headers=admin)
        assert made_too.status_code == 201, made_too.text
        assert {key: made_too.json()[key] for key in body} == body
        await http.delete(f"/v1/alert-rules/{made_too.json()['id']}", headers=admin)
    listed = (await http.get("/v1/alert-rules", headers=admin)).json()
    assert [found["id"] for found in listed] == [rule["id"], other.json()["id"]]
    assert listed[1]["min_jobs"] == 10  # the default

    read = await http.get(f"/v1/alert-rules/{rule['id']}", headers=admin)
    assert read.status_code == 200
    assert read.json() == rule

    gone = await http.delete(f"/v1/alert-rules/{rule['id']}", headers=admin)
    assert gone.status_code == 204
    missing = await http.get(f"/v1/alert-rules/{rule['id']}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    again = await http.delete(f"/v1/alert-rules/{rule['id']}", headers=admin)
    assert again.status_code == 404
    assert [found["id"] for found in (await http.get("/v1/alert-rules", headers=admin)).json()] == [
        other.json()["id"]
    ]


async def test_members_are_refused_and_organizations_see_only_their_own(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    member = await make_key("org-a", "alice")
    stranger = await make_key("org-b", "eve", admin=True)
    rule = (await http.post("/v1/alert-rules", json=RULE, headers=admin)).json()

    for method, path in [
        ("POST", "/v1/alert-rules"),
        ("GET", "/v1/alert-rules"),
        ("GET", f"/v1/alert-rules/{rule['id']}"),
        ("DELETE", f"/v1/alert-rules/{rule['id']}"),
        ("GET", "/v1/alerts"),
    ]:
        answer = await http.request(
            method, path, headers=member, json=RULE if method == "POST" else None
        )
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "forbidden"

    assert (await http.get("/v1/alert-rules", headers=stranger)).json() == []
    for method in ("GET", "DELETE"):
        answer = await http.request(method, f"/v1/alert-rules/{rule['id']}", headers=stranger)
        assert answer.status_code == 404
    assert (await http.get(f"/v1/alert-rules/{rule['id']}", headers=admin)).status_code == 200
    assert (await http.get("/v1/alert-rules")).status_code == 401


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"metric": "errors"}, "metric", "failure_rate"),
        ({"metric": "tokens", "above": -5}, "above", "greater than or equal to 0"),
        ({"model": "a\x00b"}, "model", "NUL"),
        ({"model": "m" * 256}, "model", "at most 255"),
        ({"above": 1.5}, "above", "from 0 to 1"),
        ({"above": -1}, "above", "greater than or equal to 0"),
        ({"window_s": 0}, "window_s", "greater than 0"),
        ({"window_s": 40 * 86400}, "window_s", "less than or equal"),
        ({"min_jobs": 0}, "min_jobs", "greater than or equal to 1"),
        ({"name": ""}, "name", "at least 1"),
        ({"name": None}, "name", "valid string"),
        ({"severity": "high"}, "severity", "not permitted"),
        ({"window_s": "soon"}, "window_s", "valid number"),
    ],
)
async def test_a_bad_rule_is_refused_with_a_clear_body_and_stores_nothing(
    http: httpx.AsyncClient, make_key: MakeKey, change: dict[str, Any], field: str, words: str
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    answer = await http.post("/v1/alert-rules", json=RULE | change, headers=admin)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"] or error.get("field") == field, error
    assert words in error["message"], error
    assert (await http.get("/v1/alert-rules", headers=admin)).json() == []


async def test_a_rule_missing_a_field_or_not_json_is_refused(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    for body in ({"name": "x", "metric": "failure_rate", "window_s": 60}, [RULE]):
        answer = await http.post("/v1/alert-rules", json=body, headers=admin)
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "validation_error"
    answer = await http.post(
        "/v1/alert-rules", content=b'{"name": "x", "above": NaN}', headers=admin
    )
    assert answer.status_code == 422


async def test_an_organization_keeps_a_bounded_number_of_rules(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    for number in range(RULES_MAX):
        made = await http.post("/v1/alert-rules", json=RULE | {"name": f"r{number}"}, headers=admin)
        assert made.status_code == 201
    refused = await http.post("/v1/alert-rules", json=RULE, headers=admin)
    assert refused.status_code == 422
    assert f"at most {RULES_MAX} alert rules" in refused.json()["error"]["message"]
    assert len((await http.get("/v1/alert-rules", headers=admin)).json()) == RULES_MAX
    other = await make_key("org-b", "root", admin=True)
    assert (await http.post("/v1/alert-rules", json=RULE, headers=other)).status_code == 201


async def test_a_firing_rule_shows_in_alerts_and_resolves_when_deleted(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    assert (await http.get("/v1/alerts", headers=admin)).json() == []
    rule = (await http.post("/v1/alert-rules", json=RULE | {"min_jobs": 3}, headers=admin)).json()
    for stop_reason in ("error", "error", "end_turn"):
        job = (await http.post("/v1/jobs", json={"status": "running"}, headers=admin)).json()
        ended = await http.patch(
            f"/v1/jobs/{job['id']}", json={"stop_reason": stop_reason}, headers=admin
        )
        assert ended.status_code == 200

    changed = await AlertEvaluator(app.state.jobs, 60).evaluate_due()
    assert len(changed) == 1

    alerts = (await http.get("/v1/alerts", headers=admin)).json()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["rule_id"], alert["name"], alert["state"]) == (rule["id"], RULE["name"], "firing")
    assert alert["value"] == pytest.approx(2 / 3)
    assert (alert["jobs"], alert["above"], alert["resolved_at"]) == (3, 0.2, None)
    shown = (await http.get(f"/v1/alert-rules/{rule['id']}", headers=admin)).json()
    assert (shown["firing"], shown["firing_alert_id"]) == (True, alert["id"])
    assert shown["last_value"] == pytest.approx(2 / 3)
    stranger = await make_key("org-b", "eve", admin=True)
    assert (await http.get("/v1/alerts", headers=stranger)).json() == []

    assert (await http.delete(f"/v1/alert-rules/{rule['id']}", headers=admin)).status_code == 204
    alerts = (await http.get("/v1/alerts", headers=admin)).json()
    assert [(found["id"], found["state"]) for found in alerts] == [(alert["id"], "resolved")]
    assert alerts[0]["resolved_at"] is not None


async def test_the_overview_shows_firing_alerts_to_admins(
    app: FastAPI, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    rule = RULE | {"name": "<b>agents</b> failing", "min_jobs": 1, "above": 0}
    await http.post("/v1/alert-rules", json=rule, headers=admin)
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=admin)).json()
    await http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": "error"}, headers=admin)

    await signed_in(http, admin)
    assert 'aria-label="Firing alerts"' not in (await http.get("/")).text  # not evaluated yet
    await AlertEvaluator(app.state.jobs, 60).evaluate_due()
    [alert] = (await http.get("/v1/alerts", headers=admin)).json()

    page = (await http.get("/")).text
    assert 'aria-label="Firing alerts"' in page
    assert "1 alert firing" in page
    assert f'data-alert="{alert["id"]}"' in page
    assert "&lt;b&gt;agents&lt;/b&gt; failing" in page
    assert "failure_rate at 1, above 0 over the last 300 s (1 jobs)" in page
    region = await http.get("/", params={"fragment": "1"})  # the live region has it too
    assert f'data-alert="{alert["id"]}"' in region.text

    member = await make_key("org-a", "alice")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobpulse.test"
    ) as other:
        await signed_in(other, member)
        assert 'aria-label="Firing alerts"' not in (await other.get("/")).text

    await http.delete(f"/v1/alert-rules/{alert['rule_id']}", headers=admin)
    assert 'aria-label="Firing alerts"' not in (await http.get("/")).text


async def test_text_a_database_cannot_store_is_refused_and_odd_ids_are_not_found(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    admin = await make_key("org-a", "root", admin=True)
    for field in ("name", "job_type", "user_id"):
        answer = await http.post("/v1/alert-rules", json=RULE | {field: "a\x00b"}, headers=admin)
        assert answer.status_code == 422, field
        assert answer.json()["error"]["message"] == f"{field} has a NUL character"
    for rule_id in ("rule-%00", "rule-" + "x" * 500, "%ED%A0%80"):
        for method in ("GET", "DELETE"):
            answer = await http.request(method, f"/v1/alert-rules/{rule_id}", headers=admin)
            assert answer.status_code == 404, (method, rule_id)
    assert (await http.get("/v1/alert-rules", headers=admin)).json() == []
