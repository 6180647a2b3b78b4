"""The SDK against httpx.MockTransport: retries, idempotency, errors, paging."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from jobpulse import client as sdk
from jobpulse.client import AsyncJobPulse, JobPulse
from jobpulse.errors import InvalidTransitionError, JobPulseError, NotFoundError, ValidationError

JOB = {
    "id": "job-1",
    "organization_id": "o",
    "user_id": "u",
    "job_type": "job",
    "status": "completed",
    "background": False,
    "metadata": {},
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:01Z",
}
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "RETRY_DELAYS", (0.0, 0.0, 0.0))


def client_for(handler: Handler) -> JobPulse:
    return JobPulse("http://jobpulse.test", "jp_key", transport=httpx.MockTransport(handler))


def error(status: int, code: str, **details: object) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "no", **details}})


def test_connection_errors_are_retried_with_the_same_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json=JOB | {"status": "created"})

    with client_for(handler) as client:
        job = client.create_job(job_type="job")
    assert job.status == "created"
    assert len(seen) == 3
    assert len({request.headers["Idempotency-Key"] for request in seen}) == 1
    assert seen[0].headers["Authorization"] == "Bearer jp_key"


def test_retries_end() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with client_for(handler) as client, pytest.raises(httpx.ConnectError):
        client.get_job("job-1")


def test_a_repeated_final_status_counts_as_success() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return error(
                409, "invalid_transition", current_status="completed", requested_status="completed"
            )
        return httpx.Response(200, json=JOB)

    with client_for(handler) as client:
        assert client.update_job("job-1", status="completed").status == "completed"


def test_a_real_conflict_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(
            409, "invalid_transition", current_status="failed", requested_status="completed"
        )

    with client_for(handler) as client, pytest.raises(InvalidTransitionError) as caught:
        client.update_job("job-1", status="completed")
    assert (caught.value.current_status, caught.value.requested_status) == ("failed", "completed")


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (error(404, "not_found"), NotFoundError),
        (error(422, "validation_error"), ValidationError),
        (error(500, "internal_error"), JobPulseError),
        (httpx.Response(502, text="bad gateway"), JobPulseError),
    ],
)
def test_errors_become_jobpulse_exceptions(response: httpx.Response, kind: type[Exception]) -> None:
    with client_for(lambda _request: response) as client, pytest.raises(kind):
        client.get_job("job-1")


def test_filters_become_query_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    with client_for(handler) as client:
        client.list_jobs(
            status=["running", "pending"], active=True, metadata={"team": "red"}, before=None
        )
    assert seen[0].url.params.multi_items() == [
        ("status", "running"),
        ("status", "pending"),
        ("active", "true"),
        ("metadata.team", "red"),
    ]


def test_iter_jobs_follows_cursors() -> None:
    pages = {None: ["job-3", "job-2"], "job-2": ["job-1"], "job-1": []}

    def handler(request: httpx.Request) -> httpx.Response:
        ids = pages[request.url.params.get("before")]
        return httpx.Response(200, content=json.dumps([JOB | {"id": i} for i in ids]))

    with client_for(handler) as client:
        assert [job.id for job in client.iter_jobs(limit=2)] == ["job-3", "job-2", "job-1"]


async def test_the_async_client_pages_and_tracks_streams_as_the_sync_one_does() -> None:
    pages = {None: ["job-3", "job-2"], "job-2": ["job-1"], "job-1": []}
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path == "/v1/jobs" and request.method == "GET":
            ids = pages[request.url.params.get("before")]
            return httpx.Response(200, json=[JOB | {"id": job_id} for job_id in ids])
        if request.method == "POST" and request.url.path == "/v1/jobs":
            return httpx.Response(201, json=JOB | {"status": "running"})
        return httpx.Response(200, json=JOB)

    async def tokens() -> AsyncIterator[str]:
        for token in ("a", "b"):
            yield token

    transport = httpx.MockTransport(handler)
    async with AsyncJobPulse("http://jobpulse.test", "jp_key", transport=transport) as client:
        assert [job.id async for job in client.iter_jobs(limit=2)] == ["job-3", "job-2", "job-1"]
        seen.clear()
        assert [token async for token in client.track_stream(tokens(), job_type="llm")] == [
            "a",
            "b",
        ]
    assert seen == [
        ("POST", "/v1/jobs"),
        ("POST", "/v1/jobs/job-1/first-token"),
        ("PATCH", "/v1/jobs/job-1"),
    ]
