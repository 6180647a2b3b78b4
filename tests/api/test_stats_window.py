"""`/v1/stats`'s window as a caller reads it: `since` alone means from then until now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import MakeKey


async def test_since_alone_runs_until_now(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    headers = await make_key("org-a", "alice")
    made = await http.post("/v1/jobs", json={}, headers=headers)
    assert made.status_code == 201
    since = datetime.now(UTC) - timedelta(days=3)
    answer = await http.get(
        "/v1/stats", params={"since": since.isoformat(), "bucket": "day"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    until = datetime.fromisoformat(stats["until"])
    assert abs(until - datetime.now(UTC)) < timedelta(minutes=1)  # not since + 1 day
    assert datetime.fromisoformat(stats["since"]) == since
    assert stats["total"] == 1  # the job made just now is in it


async def test_since_in_the_future_is_refused(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    headers = await make_key("org-a", "alice")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = await http.get("/v1/stats", params={"since": soon}, headers=headers)
    assert answer.status_code == 422
    assert "since must be earlier than until" in answer.json()["error"]["message"]
