"""The Python SDK: `JobPulse` and its async twin `AsyncJobPulse`.

Both send the same `Call`s (calls.py: the requests and how their answers read); only sending
differs. Idempotent requests are retried on connection errors, creation included (the SDK
sends an Idempotency-Key), and a 409 saying the job is already in the requested status
counts as success, so a worker repeating "completed" is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from jobpulse import __version__
from jobpulse.calls import TERMINAL, Call, Requests, error_of, next_page, server_events
from jobpulse.public import BulkResultPublic, EventPublic, JobCountPublic, JobPublic
from jobpulse.tokens.schemas import TokenPublic
from jobpulse.tracking import (
    AsyncTracker,
    JobCancelled,
    Tracker,
    track_async_stream,
    track_stream,
)
from jobpulse.webhooks import signing

T = TypeVar("T")
__all__ = ["AsyncJobPulse", "JobCancelled", "JobPulse", "TokenPublic", "verify_webhook"]

RETRY_DELAYS = (0.2, 0.5, 1.0)


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str) -> Any:
    """For receivers: the parsed body of a jobpulse webhook whose Standard Webhooks signature
    is valid and at most 5 minutes old; raises WebhookVerificationError otherwise.
    """
    return signing.verify(dict(headers), body, secret)


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"jobpulse-python/{__version__}"}


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

    def _run(self, call: Call[T]) -> T:
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
        return self._run(Requests.create_job(**fields))

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
        return self._run(Requests.track_batch(provider, batch_id, metadata, fields))

    def get_job(self, job_id: str) -> JobPublic:
        """One job."""
        return self._run(Requests.get_job(job_id))

    def update_job(self, job_id: str, **fields: Any) -> JobPublic:
        """Change a job (fields of PATCH /v1/jobs/{id})."""
        return self._run(Requests.update_job(job_id, **fields))

    def cancel_job(self, job_id: str, reason: str | None = None) -> JobPublic:
        """Cancel a job (a job already cancelled is fine)."""
        return self._run(Requests.cancel_job(job_id, reason))

    def heartbeat(self, job_id: str, progress: Mapping[str, Any] | None = None) -> JobPublic:
        """Say the job is alive."""
        return self._run(Requests.heartbeat(job_id, progress))

    def first_token(self, job_id: str) -> JobPublic:
        """Record the time to first token now."""
        return self._run(Requests.first_token(job_id))

    def record_usage(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Add one LLM call's usage to a job (fields of POST /v1/jobs/{id}/usage: provider,
        model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd,
        ttft_ns, duration_ns); the record as stored.
        """
        return self._run(Requests.record_usage(job_id, **fields))

    def list_usage(self, job_id: str) -> list[dict[str, Any]]:
        """A job's LLM calls, in the order they were recorded."""
        return self._run(Requests.list_usage(job_id))

    def report_jobs(self, reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Apply up to 500 reports of what tasks did in one request (POST /v1/jobs/reports):
        each `{"idempotency_key": ..., "job": {...}, "update": {...}}` or with `heartbeat`,
        applied to the job its key names (made from `job` if there is none yet). One result
        a report, in order: its `job_id` and `status`, or the `error` that refused it; a
        refused report never stops the others.
        """
        return self._run(Requests.report_jobs(reports))

    def list_events(self, job_id: str) -> list[EventPublic]:
        """A job's history."""
        return self._run(Requests.list_events(job_id))

    def delete_job(self, job_id: str) -> None:
        """Delete a job."""
        self._run(Requests.delete_job(job_id))

    def list_jobs(self, **filters: Any) -> list[JobPublic]:
        """One page of jobs (the filters and paging of GET /v1/jobs)."""
        return self._run(Requests.list_jobs(**filters))

    def count_jobs(self, **filters: Any) -> JobCountPublic:
        """Counts for the same filters."""
        return self._run(Requests.count_jobs(**filters))

    def cancel_jobs(
        self, *, dry_run: bool = False, reason: str | None = None, **filters: Any
    ) -> BulkResultPublic:
        """Cancel every active job the list filters match (`dry_run`: only count them)."""
        return self._run(Requests.cancel_jobs(filters, dry_run, reason))

    def retry_callbacks(self, *, dry_run: bool = False, **filters: Any) -> BulkResultPublic:
        """Re-send the callback of every ended job the list filters match that has one."""
        return self._run(Requests.retry_callbacks(filters, dry_run))

    def iter_jobs(self, **filters: Any) -> Iterator[JobPublic]:
        """Every matching job, following the cursors page by page."""
        call: Call[list[JobPublic]] | None = Requests.list_jobs(**filters)
        while call is not None:
            page = self._run(call)
            yield from page
            call = next_page(call, page, bool(filters.get("ascending")))

    def create_token(
        self,
        *,
        job_id: str | None = None,
        job_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        ttl_s: int | None = None,
    ) -> TokenPublic:
        """A read-only token for a browser (POST /v1/tokens): for one job you can see, or for
        your jobs of `job_type` and/or with these `metadata` values, for `ttl_s` seconds
        (default 900, at most 86400). It reads those jobs and their live streams only.
        """
        return self._run(Requests.create_token(job_id, job_type, metadata, ttl_s))

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

    async def _run(self, call: Call[T]) -> T:
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
        return await self._run(Requests.create_job(**fields))

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
                        raise error_of(response)
                    if last is None:  # it may have ended before the stream began
                        status = (await self.get_job(job_id)).status
                        if status in TERMINAL:
                            return status == "cancelled"
                    async for event_id, data in server_events(response.aiter_lines()):
                        last = event_id or last
                        if data.get("to_status") in TERMINAL:
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
        return await self._run(Requests.track_batch(provider, batch_id, metadata, fields))

    async def get_job(self, job_id: str) -> JobPublic:
        """One job."""
        return await self._run(Requests.get_job(job_id))

    async def update_job(self, job_id: str, **fields: Any) -> JobPublic:
        """Change a job (fields of PATCH /v1/jobs/{id})."""
        return await self._run(Requests.update_job(job_id, **fields))

    async def cancel_job(self, job_id: str, reason: str | None = None) -> JobPublic:
        """Cancel a job (a job already cancelled is fine)."""
        return await self._run(Requests.cancel_job(job_id, reason))

    async def heartbeat(self, job_id: str, progress: Mapping[str, Any] | None = None) -> JobPublic:
        """Say the job is alive."""
        return await self._run(Requests.heartbeat(job_id, progress))

    async def first_token(self, job_id: str) -> JobPublic:
        """Record the time to first token now."""
        return await self._run(Requests.first_token(job_id))

    async def record_usage(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Add one LLM call's usage to a job (see `JobPulse.record_usage`)."""
        return await self._run(Requests.record_usage(job_id, **fields))

    async def list_usage(self, job_id: str) -> list[dict[str, Any]]:
        """A job's LLM calls, in the order they were recorded."""
        return await self._run(Requests.list_usage(job_id))

    async def report_jobs(self, reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Apply up to 500 reports in one request (see `JobPulse.report_jobs`)."""
        return await self._run(Requests.report_jobs(reports))

    async def list_events(self, job_id: str) -> list[EventPublic]:
        """A job's history."""
        return await self._run(Requests.list_events(job_id))

    async def delete_job(self, job_id: str) -> None:
        """Delete a job."""
        await self._run(Requests.delete_job(job_id))

    async def list_jobs(self, **filters: Any) -> list[JobPublic]:
        """One page of jobs (the filters and paging of GET /v1/jobs)."""
        return await self._run(Requests.list_jobs(**filters))

    async def count_jobs(self, **filters: Any) -> JobCountPublic:
        """Counts for the same filters."""
        return await self._run(Requests.count_jobs(**filters))

    async def cancel_jobs(
        self, *, dry_run: bool = False, reason: str | None = None, **filters: Any
    ) -> BulkResultPublic:
        """Cancel every active job the list filters match (`dry_run`: only count them)."""
        return await self._run(Requests.cancel_jobs(filters, dry_run, reason))

    async def retry_callbacks(self, *, dry_run: bool = False, **filters: Any) -> BulkResultPublic:
        """Re-send the callback of every ended job the list filters match that has one."""
        return await self._run(Requests.retry_callbacks(filters, dry_run))

    async def iter_jobs(self, **filters: Any) -> AsyncIterator[JobPublic]:
        """Every matching job, following the cursors page by page."""
        call: Call[list[JobPublic]] | None = Requests.list_jobs(**filters)
        while call is not None:
            page = await self._run(call)
            for job in page:
                yield job
            call = next_page(call, page, bool(filters.get("ascending")))

    async def create_token(
        self,
        *,
        job_id: str | None = None,
        job_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        ttl_s: int | None = None,
    ) -> TokenPublic:
        """A read-only token for a browser (see `JobPulse.create_token`)."""
        return await self._run(Requests.create_token(job_id, job_type, metadata, ttl_s))

    def track(self, **options: Any) -> AsyncTracker:
        """An async context manager and decorator that reports a run as a job.

        Options: those of `JobPulse.track`, and cancel_stream (True: wait for a cancel on the
        job's live stream, so the run stops at once rather than at its next heartbeat).
        """
        return AsyncTracker(self, **options)

    def track_stream(self, items: AsyncIterable[T], **options: Any) -> AsyncIterator[T]:
        """Yield from `items` inside a tracked job; the first item records the first token."""
        return track_async_stream(self, items, **options)
