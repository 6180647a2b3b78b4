"""The SDK's requests and how their answers read: every endpoint as a `Call`, built once
and sent by either client (client.py), which alone does I/O.

A 409 saying the job is already in the requested status is recognised here (`Call.already`),
so that a worker repeating "completed" is answered with the job rather than an error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import TypeAdapter

from jobpulse.errors import InvalidTransitionError, JobPulseError, error_class
from jobpulse.public import BulkResultPublic, EventPublic, JobCountPublic, JobPublic
from jobpulse.tokens.schemas import TokenPublic

T = TypeVar("T")

_JOBS = TypeAdapter(list[JobPublic])
_EVENTS = TypeAdapter(list[EventPublic])


def error_of(response: httpx.Response) -> JobPulseError:
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


#: The statuses a job ends in, as the API spells them.
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})


async def server_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, Any]]:
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
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: A 409 whose current status is this one is a success: the answer is `fallback`'s.
    already: str | None = None
    fallback: Call[T] | None = None

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
        error = error_of(response)
        return isinstance(error, InvalidTransitionError) and error.current_status == self.already

    def read(self, response: httpx.Response) -> T:
        if response.is_error:
            raise error_of(response)
        return self.parse(response)


def _job(response: httpx.Response) -> JobPublic:
    return JobPublic.model_validate_json(response.content)


def _record(response: httpx.Response) -> dict[str, Any]:
    return dict(response.json())


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


class Requests:
    """Every endpoint as a `Call`: built once, sent by either client."""

    @staticmethod
    def create_job(**fields: Any) -> Call[JobPublic]:
        body = {name: value for name, value in fields.items() if value is not None}
        key = {"Idempotency-Key": str(uuid.uuid4())}
        return Call("POST", "/v1/jobs", _job, json=body, headers=key)

    @classmethod
    def track_batch(
        cls,
        provider: str,
        batch_id: str,
        metadata: Mapping[str, Any] | None,
        fields: Mapping[str, Any],
    ) -> Call[JobPublic]:
        described = {**(metadata or {}), "provider": provider, "batch_id": batch_id}
        return cls.create_job(job_type="llm_batch", status="pending", metadata=described, **fields)

    @staticmethod
    def get_job(job_id: str) -> Call[JobPublic]:
        return Call("GET", f"/v1/jobs/{job_id}", _job)

    @classmethod
    def update_job(cls, job_id: str, **fields: Any) -> Call[JobPublic]:
        body = {name: value for name, value in fields.items() if value is not None}
        status = body.get("status")
        return Call(
            "PATCH",
            f"/v1/jobs/{job_id}",
            _job,
            json=body,
            already=status,
            fallback=cls.get_job(job_id) if status else None,
        )

    @classmethod
    def cancel_job(cls, job_id: str, reason: str | None) -> Call[JobPublic]:
        return Call(
            "POST",
            f"/v1/jobs/{job_id}/cancel",
            _job,
            json={"reason": reason} if reason else None,
            already="cancelled",
            fallback=cls.get_job(job_id),
        )

    @staticmethod
    def heartbeat(job_id: str, progress: Mapping[str, Any] | None) -> Call[JobPublic]:
        body = {"progress": dict(progress)} if progress else None
        return Call("POST", f"/v1/jobs/{job_id}/heartbeat", _job, json=body)

    @staticmethod
    def first_token(job_id: str) -> Call[JobPublic]:
        return Call("POST", f"/v1/jobs/{job_id}/first-token", _job)

    @staticmethod
    def record_usage(job_id: str, **fields: Any) -> Call[dict[str, Any]]:
        body = {name: value for name, value in fields.items() if value is not None}
        return Call("POST", f"/v1/jobs/{job_id}/usage", _record, json=body)

    @staticmethod
    def report_jobs(reports: Sequence[Mapping[str, Any]]) -> Call[list[dict[str, Any]]]:
        body = {"reports": [dict(report) for report in reports]}
        return Call("POST", "/v1/jobs/reports", lambda r: list(r.json()["results"]), json=body)

    @staticmethod
    def list_usage(job_id: str) -> Call[list[dict[str, Any]]]:
        return Call("GET", f"/v1/jobs/{job_id}/usage", lambda r: list(r.json()))

    @staticmethod
    def list_events(job_id: str) -> Call[list[EventPublic]]:
        return Call("GET", f"/v1/jobs/{job_id}/events", lambda r: _EVENTS.validate_json(r.content))

    @staticmethod
    def delete_job(job_id: str) -> Call[None]:
        return Call("DELETE", f"/v1/jobs/{job_id}", _nothing)

    @staticmethod
    def list_jobs(**filters: Any) -> Call[list[JobPublic]]:
        params = _query(_filters(filters))
        return Call("GET", "/v1/jobs", lambda r: _JOBS.validate_json(r.content), params=params)

    @staticmethod
    def create_token(
        job_id: str | None,
        job_type: str | None,
        metadata: Mapping[str, str] | None,
        ttl_s: int | None,
    ) -> Call[TokenPublic]:
        asked = {"job_id": job_id, "job_type": job_type, "metadata": metadata, "ttl_s": ttl_s}
        body = {name: value for name, value in asked.items() if value is not None}
        return Call(
            "POST", "/v1/tokens", lambda r: TokenPublic.model_validate_json(r.content), json=body
        )

    @staticmethod
    def count_jobs(**filters: Any) -> Call[JobCountPublic]:
        return Call(
            "GET",
            "/v1/jobs/count",
            lambda r: JobCountPublic.model_validate_json(r.content),
            params=_query(_filters(filters)),
        )

    @staticmethod
    def cancel_jobs(
        filters: Mapping[str, Any], dry_run: bool, reason: str | None
    ) -> Call[BulkResultPublic]:
        body: dict[str, Any] = {"filter": _body_filter(filters), "dry_run": dry_run}
        if reason is not None:
            body["reason"] = reason
        return Call("POST", "/v1/jobs/cancel", _bulk_result, json=body)

    @staticmethod
    def retry_callbacks(filters: Mapping[str, Any], dry_run: bool) -> Call[BulkResultPublic]:
        body = {"filter": _body_filter(filters), "dry_run": dry_run}
        return Call("POST", "/v1/jobs/callbacks/retry", _bulk_result, json=body)


def _bulk_result(response: httpx.Response) -> BulkResultPublic:
    return BulkResultPublic.model_validate_json(response.content)


def _body_filter(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The list filters as a JSON body: sets become lists, moments ISO 8601, None left out."""
    body: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            value = sorted(str(item) for item in value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        body[name] = value
    return body


def next_page(
    call: Call[list[JobPublic]], page: list[JobPublic], ascending: bool
) -> Call[list[JobPublic]] | None:
    """The call for the page after `page` in reading order, or None at the end."""
    if not page:
        return None
    cursor = "after" if ascending else "before"
    params = [(n, v) for n, v in call.params if n not in ("after", "before")]
    return replace(call, params=[*params, (cursor, page[-1].id)])
