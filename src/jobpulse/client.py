"""The Python SDK: `JobPulse` and its async twin `AsyncJobPulse`.

Both build requests and read responses through the same `_Call` objects; only sending
differs. Idempotent requests are retried on connection errors, creation included (the SDK
sends an Idempotency-Key), and a 409 saying the job is already in the requested status
counts as success, so a worker repeating "completed" is harmless.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import TypeAdapter

from jobpulse import __version__
from jobpulse.errors import InvalidTransitionError, JobPulseError, error_class
from jobpulse.public import EventPublic, JobCountPublic, JobPublic
from jobpulse.tracking import (
    AsyncTracker,
    JobCancelled,
    Tracker,
    track_async_stream,
    track_stream,
)
from jobpulse.webhooks import signing

T = TypeVar("T")
__all__ = ["AsyncJobPulse", "JobCancelled", "JobPulse", "verify_webhook"]

RETRY_DELAYS = (0.2, 0.5, 1.0)
_JOBS = TypeAdapter(list[JobPublic])
_EVENTS = TypeAdapter(list[EventPublic])


def _error(response: httpx.Response) -> JobPulseError:
    """The jobpulse exception an error response stands for."""
    try:
        detail = dict(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        detail = {"code": "error", "message": response.text[:500] or response.reason_phrase}
    code, message = str(detail.pop("code", "error")), str(detail.pop("message", ""))
    kind = error_class(code)
    if issubclass(kind, InvalidTransitionError):
        return kind(
            message,
            current_status=str(detail.get("current_status")),
            requested_status=detail.get("requested_status"),
        )
    error = kind(message, **detail)
    error.code = code
    return error


_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})


async def _server_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, Any]]:
    """(id, JSON data) of each Server-Sent Event of a stream's lines (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in fields and "event" not in fields:
                yield fields.get("id"), json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: A 409 whose current status is this one is a success: the answer is `fallback`'s.
    already: str | None = None
    fallback: _Call[T] | None = None

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return client.build_request(
            self.method,
            self.path,
            params=tuple(self.params),
            json=self.json,
            headers=self.headers,
        )

    def is_already_done(self, response: httpx.Response) -> bool:
        if response.status_code != 409 or self.already is None:
            return False
        error = _error(response)
        return isinstance(error, InvalidTransitionError) and error.current_status == self.already

    def read(self, response: httpx.Response) -> T:
        if response.is_error:
            raise _error(response)
        return self.parse(response)


def _job(response: httpx.Response) -> JobPublic:
    return JobPublic.model_validate_json(response.content)


def _nothing(_response: httpx.Response) -> None:
    return None


def _query(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters: lists repeat, booleans are lowercase, None is left out."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        for item in value if isinstance(value, list | tuple | set | frozenset) else [value]:
            if item is None:
                continue
            text = str(item).lower() if isinstance(item, bool) else str(item)
            pairs.append((name, item.isoformat() if hasattr(item, "isoformat") else text))
    return pairs


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """List filters; `metadata={"k": "v"}` becomes metadata.k=v."""
    params = {name: value for name, value in filters.items() if name != "metadata"}
    for key, value in (filters.get("metadata") or {}).items():
        params[f"metadata.{key}"] = value
    return params


class _Requests:
    """Every endpoint as a `_Call`: built once, sent by either client."""

    @staticmethod
    def create_job(**fields: Any) -> _Call[JobPublic]:
        body = {name: value for name, value in fields.items() if value is not None}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        return _Call("POST", "/v1/jobs", _job, json=body, headers=key)

    @classmethod
    def track_batch(
        cls,
        provider: str,
        batch_id: str,
        metadata: Mapping[str, Any] | None,
        fields: Mapping[str, Any],
    ) -> _Call[JobPublic]:
        described = {**(metadata or {}), "provider": provider, "batch_id": batch_id}
        return cls.create_job(job_type="llm_batch", status="pending", metadata=described, **fields)

    @staticmethod
    def get_job(job_id: str) -> _Call[JobPublic]:
        return _Call("GET", f"/v1/jobs/{job_id}", _job)

    @classmethod
    def update_job(cls, job_id: str, **fields: Any) -> _Call[JobPublic]:
        body = {name: value for name, value in fields.items() if value is not None}
        status = body.get("status")
        return _Call(
            "PATCH",
            f"/v1/jobs/{job_id}",
            _job,
            json=body,
            already=status,
            fallback=cls.get_job(job_id) if status else None,
        )

    @classmethod
    def cancel_job(cls, job_id: str, reason: str | None) -> _Call[JobPublic]:
        return _Call(
            "POST",
            f"/v1/jobs/{job_id}/cancel",
            _job,
            json={"reason": reason} if reason else None,
            already="cancelled",
            fallback=cls.get_job(job_id),
        )

    @staticmethod
    def heartbeat(job_id: str, progress: Mapping[str, Any] | None) -> _Call[JobPublic]:
        body = {"progress": dict(progress)} if progress else None
        return _Call("POST", f"/v1/jobs/{job_id}/heartbeat", _job, json=body)

    @staticmethod
    def first_token(job_id: str) -> _Call[JobPublic]:
        return _Call("POST", f"/v1/jobs/{job_id}/first-token", _job)

    @staticmethod
    def list_events(job_id: str) -> _Call[list[EventPublic]]:
        return _Call("GET", f"/v1/jobs/{job_id}/events", lambda r: _EVENTS.validate_json(r.content))

    @staticmethod
    def delete_job(job_id: str) -> _Call[None]:
        return _Call("DELETE", f"/v1/jobs/{job_id}", _nothing)

    @staticmethod
    def list_jobs(**filters: Any) -> _Call[list[JobPublic]]:
        params = _query(_filters(filters))
        return _Call("GET", "/v1/jobs", lambda r: _JOBS.validate_json(r.content), params=params)

    @staticmethod
    def count_jobs(**filters: Any) -> _Call[JobCountPublic]:
        return _Call(
            "GET",
            "/v1/jobs/count",
            lambda r: JobCountPublic.model_validate_json(r.content),
            params=_query(_filters(filters)),
        )


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str) -> Any:
    """For receivers: the parsed body of a jobpulse webhook whose Standard Webhooks signature
    is valid and at most 5 minutes old; raises WebhookVerificationError otherwise.
    """
    return signing.verify(dict(headers), body, secret)


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"jobpulse-python/{__version__}"}


def _next_page(
    call: _Call[list[JobPublic]], page: list[JobPublic], ascending: bool
) -> _Call[list[JobPublic]] | None:
    """The call for the page after `page` in reading order, or None at the end."""
    if not page:
        return None
    cursor = "after" if ascending else "before"
    params = [(n, v) for n, v in call.params if n not in ("after", "before")]
    return replace(call, params=[*params, (cursor, page[-1].id)])


class JobPulse:
    """The synchronous client: `JobPulse("http://127.0.0.1:8000", api_key)`."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> JobPulse:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self, call: _Call[T]) -> T:
        for delay in (*RETRY_DELAYS, None):
            try:
                response = self._http.send(call.request(self._http))
                break
            except httpx.TransportError:
                if delay is None:
                    raise
                time.sleep(delay)
        if call.fallback is not None and call.is_already_done(response):
            return self._run(call.fallback)
        return call.read(response)

    def create_job(self, **fields: Any) -> JobPublic:
        """Create a job (fields of POST /v1/jobs)."""
        return self._run(_Requests.create_job(**fields))

    def track_batch(
        self,
        provider: str,
        batch_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> JobPublic:
        """Register a provider batch (`anthropic` or `openai`) as an `llm_batch` job that the
        server follows to its end (other fields of POST /v1/jobs, as callback_url, allowed).
        """
        return self._run(_Requests.track_batch(provider, batch_id, metadata, fields))

    def get_job(self, job_id: str) -> JobPublic:
        """One job."""
        return self._run(_Requests.get_job(job_id))

    def update_job(self, job_id: str, **fields: Any) -> JobPublic:
        """Change a job (fields of PATCH /v1/jobs/{id})."""
        return self._run(_Requests.update_job(job_id, **fields))

    def cancel_job(self, job_id: str, reason: str | None = None) -> JobPublic:
        """Cancel a job (a job already cancelled is fine)."""
        return self._run(_Requests.cancel_job(job_id, reason))

    def heartbeat(self, job_id: str, progress: Mapping[str, Any] | None = None) -> JobPublic:
        """Say the job is alive."""
        return self._run(_Requests.heartbeat(job_id, progress))

    def first_token(self, job_id: str) -> JobPublic:
        """Record the time to first token now."""
        return self._run(_Requests.first_token(job_id))

    def list_events(self, job_id: str) -> list[EventPublic]:
        """A job's history."""
        return self._run(_Requests.list_events(job_id))

    def delete_job(self, job_id: str) -> None:
        """Delete a job."""
        self._run(_Requests.delete_job(job_id))

    def list_jobs(self, **filters: Any) -> list[JobPublic]:
        """One page of jobs (the filters and paging of GET /v1/jobs)."""
        return self._run(_Requests.list_jobs(**filters))

    def count_jobs(self, **filters: Any) -> JobCountPublic:
        """Counts for the same filters."""
        return self._run(_Requests.count_jobs(**filters))

    def iter_jobs(self, **filters: Any) -> Iterator[JobPublic]:
        """Every matching job, following the cursors page by page."""
        call: _Call[list[JobPublic]] | None = _Requests.list_jobs(**filters)
        while call is not None:
            page = self._run(call)
            yield from page
            call = _next_page(call, page, bool(filters.get("ascending")))

    def track(self, **options: Any) -> Tracker:
        """A context manager and decorator that reports a run as a job.

        Options: job_type, metadata, callback_url, background, timeout_s, heartbeat_s.
        """
        return Tracker(self, **options)

    def track_stream(self, items: Iterable[T], **options: Any) -> Iterator[T]:
        """Yield from `items` inside a tracked job; the first item records the first token."""
        return track_stream(self, items, **options)


class AsyncJobPulse:
    """The asynchronous client, with the same methods as JobPulse, awaited."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJobPulse:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _run(self, call: _Call[T]) -> T:
        for delay in (*RETRY_DELAYS, None):
            try:
                response = await self._http.send(call.request(self._http))
                break
            except httpx.TransportError:
                if delay is None:
                    raise
                await asyncio.sleep(delay)
        if call.fallback is not None and call.is_already_done(response):
            return await self._run(call.fallback)
        return call.read(response)

    async def create_job(self, **fields: Any) -> JobPublic:
        """Create a job (fields of POST /v1/jobs)."""
        return await self._run(_Requests.create_job(**fields))

    async def wait_cancelled(self, job_id: str) -> bool:
        """Wait on the job's live stream (GET /v1/jobs/{id}/stream) until it ends: True once
        it is cancelled (at once if it already is), False if it ends otherwise. A dropped
        stream is resumed where it stopped (Last-Event-ID).
        """
        last: str | None = None
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                async with self._http.stream(
                    "GET",
                    f"/v1/jobs/{job_id}/stream",
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect, read=None),
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise _error(response)
                    if last is None:  # it may have ended before the stream began
                        status = (await self.get_job(job_id)).status
                        if status in _TERMINAL:
                            return status == "cancelled"
                    async for event_id, data in _server_events(response.aiter_lines()):
                        last = event_id or last
                        if data.get("to_status") in _TERMINAL:
                            return bool(data["to_status"] == "cancelled")
            except httpx.TransportError:
                await asyncio.sleep(RETRY_DELAYS[-1])

    async def track_batch(
        self,
        provider: str,
        batch_id: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> JobPublic:
        """Register a provider batch as an `llm_batch` job (see `JobPulse.track_batch`)."""
        return await self._run(_Requests.track_batch(provider, batch_id, metadata, fields))

    async def get_job(self, job_id: str) -> JobPublic:
        """One job."""
        return await self._run(_Requests.get_job(job_id))

    async def update_job(self, job_id: str, **fields: Any) -> JobPublic:
        """Change a job (fields of PATCH /v1/jobs/{id})."""
        return await self._run(_Requests.update_job(job_id, **fields))

    async def cancel_job(self, job_id: str, reason: str | None = None) -> JobPublic:
        """Cancel a job (a job already cancelled is fine)."""
        return await self._run(_Requests.cancel_job(job_id, reason))

    async def heartbeat(self, job_id: str, progress: Mapping[str, Any] | None = None) -> JobPublic:
        """Say the job is alive."""
        return await self._run(_Requests.heartbeat(job_id, progress))

    async def first_token(self, job_id: str) -> JobPublic:
        """Record the time to first token now."""
        return await self._run(_Requests.first_token(job_id))

    async def list_events(self, job_id: str) -> list[EventPublic]:
        """A job's history."""
        return await self._run(_Requests.list_events(job_id))

    async def delete_job(self, job_id: str) -> None:
        """Delete a job."""
        await self._run(_Requests.delete_job(job_id))

    async def list_jobs(self, **filters: Any) -> list[JobPublic]:
        """One page of jobs (the filters and paging of GET /v1/jobs)."""
        return await self._run(_Requests.list_jobs(**filters))

    async def count_jobs(self, **filters: Any) -> JobCountPublic:
        """Counts for the same filters."""
        return await self._run(_Requests.count_jobs(**filters))

    async def iter_jobs(self, **filters: Any) -> AsyncIterator[JobPublic]:
        """Every matching job, following the cursors page by page."""
        call: _Call[list[JobPublic]] | None = _Requests.list_jobs(**filters)
        while call is not None:
            page = await self._run(call)
            for job in page:
                yield job
            call = _next_page(call, page, bool(filters.get("ascending")))

    def track(self, **options: Any) -> AsyncTracker:
        """An async context manager and decorator that reports a run as a job.

        Options: those of `JobPulse.track`, and cancel_stream (True: wait for a cancel on the
        job's live stream, so the run stops at once rather than at its next heartbeat).
        """
        return AsyncTracker(self, **options)

    def track_stream(self, items: AsyncIterable[T], **options: Any) -> AsyncIterator[T]:
        """Yield from `items` inside a tracked job; the first item records the first token."""
        return track_async_stream(self, items, **options)
