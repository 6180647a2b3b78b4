"""Alert rules in real `jobpulse serve` processes: on SQLite one, on PostgreSQL two replicas
of one database, each evaluating every half second. A failure-rate rule fires and resolves
with exactly one signed message each to a receiver on loopback, and both replicas list it.
"""

from __future__ import annotations

import time

import httpx

from jobpulse.client import verify_webhook
from tests.e2e.conftest import Server, close, start
from tests.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULE = {
    "name": "agents failing",
    "metric": "failure_rate",
    "window_s": 3600,
    "above": 0.5,
    "min_jobs": 3,
}


def _end_jobs(server: Server, key: dict[str, str], stop_reason: str, number: int) -> None:
    with httpx.Client(base_url=server.url, headers=key) as http:
        for _ in range(number):
            job = http.post("/v1/jobs", json={"status": "running"}).json()
            answer = http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": stop_reason})
            assert answer.status_code == 200


def _received(receiver: Receiver, number: int) -> list[str]:
    """The event types received once `number` have come (within 20 s), and 3 s more."""
    deadline = time.monotonic() + 20
    while len(receiver.received) < number:
        assert time.monotonic() < deadline, [r.json["type"] for r in receiver.received]
        time.sleep(0.05)
    time.sleep(3)  # four evaluation periods of each replica: time enough for a duplicate
    return [request.json["type"] for request in receiver.received]


def test_a_rule_fires_and_resolves_once_across_replicas(
    empty_database_url: str, receiver: Receiver
) -> None:
    env = {
        "JOBPULSE_ALERT_WEBHOOK": receiver.url,
        "JOBPULSE_ALERT_INTERVAL_S": "0.5",
        "JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
        "JOBPULSE_WEBHOOK_SECRET": SECRET,
    }
    servers = [start(empty_database_url, env=env)]
    if empty_database_url.startswith("postgresql"):
        servers.append(start(empty_database_url, expect_key=False, env=env))
    first, last = servers[0], servers[-1]
    try:
        key = {"Authorization": f"Bearer {first.admin_key}"}
        made = httpx.post(f"{first.url}/v1/alert-rules", json=RULE, headers=key)
        assert made.status_code == 201, made.text
        rule = made.json()

        _end_jobs(last, key, "error", 2)
        _end_jobs(first, key, "end_turn", 1)  # 2 of 3 failed: above its line
        assert _received(receiver, 1) == ["alert.firing"]
        for server in servers:
            [alert] = httpx.get(f"{server.url}/v1/alerts", headers=key).json()
            assert (alert["rule_id"], alert["state"], alert["jobs"]) == (rule["id"], "firing", 3)

        _end_jobs(first, key, "end_turn", 3)  # 2 of 6: back under it
        assert _received(receiver, 2) == ["alert.firing", "alert.resolved"]
        bodies = [verify_webhook(r.headers, r.body, SECRET) for r in receiver.received]
        assert bodies[0]["data"]["alert_id"] == bodies[1]["data"]["alert_id"] == alert["id"]
        assert bodies[1]["data"]["value"] <= 0.5  # 2 of 5 or of 6, as the round fell
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 2
        for server in servers:
            [alert] = httpx.get(f"{server.url}/v1/alerts", headers=key).json()
            assert alert["state"] == "resolved"
            shown = httpx.get(f"{server.url}/v1/alert-rules/{rule['id']}", headers=key).json()
            assert shown["firing"] is False
    finally:
        for server in servers:
            close(server)
