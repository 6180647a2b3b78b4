"""What a request must be, on SQLite and PostgreSQL: moments are ISO 8601 date-times and
nothing else (a number is not seconds since 1970), and a 405 names the methods that are
allowed at its path."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import MakeKey

NOT_A_MOMENT = ["0.5", "0", "1700000000", "-1", "1e9", "yesterday", "2026-01-31"]


@pytest.mark.parametrize("value", NOT_A_MOMENT)
@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/jobs", "created_after"),
        ("/v1/jobs", "created_before"),
        ("/v1/jobs/count", "created_after"),
        ("/v1/jobs/count", "created_before"),
        ("/v1/stats", "created_before"),
        ("/v1/stats", "since"),
        ("/v1/stats", "until"),
        ("/v1/jobs/stream", "created_before"),
    ],
)
async def test_a_query_moment_that_is_not_iso_8601_is_422(
    http: httpx.AsyncClient, make_key: MakeKey, path: str, name: str, value: str
) -> None:
    headers = await make_key("org-a", "alice")
    response = await http.get(path, params={name: value}, headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert name in error["message"]
    assert "ISO 8601" in error["message"]


@pytest.mark.parametrize("value", [0.5, 0, 1700000000, "0.5", "1700000000", True, "2026-01-31"])
async def test_a_deadline_that_is_not_an_iso_8601_string_is_422(
    http: httpx.AsyncClient, make_key: MakeKey, value: object
) -> None:
    headers = await make_key("org-a", "alice")
    response = await http.post("/v1/jobs", json={"deadline_at": value}, headers=headers)
    assert response.status_code == 422, response.text
    assert "deadline_at" in response.json()["error"]["message"]
    assert (await http.get("/v1/jobs/count", headers=headers)).json()["total"] == 0


@pytest.mark.parametrize(
    "moment", ["2026-01-31T12:00:00Z", "2026-01-31T12:00:00+02:00", "2026-01-31 12:00:00.5+00:00"]
)
async def test_iso_8601_moments_are_taken(
    http: httpx.AsyncClient, make_key: MakeKey, moment: str
) -> None:
    headers = await make_key("org-a", "alice")
    for path, name in (("/v1/jobs", "created_before"), ("/v1/stats", "until")):
        response = await http.get(path, params={name: moment}, headers=headers)
        assert response.status_code == 200, response.text
    created = await http.post("/v1/jobs", json={"deadline_at": moment}, headers=headers)
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/jobs", {"GET", "POST"}),
        ("PUT", "/v1/jobs/job-123", {"GET", "PATCH", "DELETE"}),
        ("POST", "/v1/stats", {"GET"}),
        ("GET", "/v1/jobs/job-123/cancel", {"POST"}),
        ("DELETE", "/healthz", {"GET"}),
        ("GET", "/logout", {"POST"}),  # the dashboard's
        ("DELETE", "/login", {"GET", "POST"}),
        ("POST", "/static/dashboard/dashboard.css", {"GET", "HEAD"}),
    ],
)
async def test_a_405_names_every_allowed_method(
    http: httpx.AsyncClient, make_key: MakeKey, method: str, path: str, allowed: set[str]
) -> None:
    headers = await make_key("org-a", "alice")
    response = await http.request(method, path, headers=headers)
    assert response.status_code == 405, response.text
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) == allowed
    for named in allowed:  # and each one named is served there
        assert (await http.request(named, path, headers=headers)).status_code != 405, named
