"""/v1/jobs: create, read, change, list and count jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from pydantic import TypeAdapter

from jobpulse.api.deps import ACCESS_TOKEN, Authenticated, Reader
from jobpulse.documents import repaired, text_problem
from jobpulse.domain import Job, parse_status, parse_stop_reason
from jobpulse.errors import ValidationError
from jobpulse.listing import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, JobFilter, Page
from jobpulse.public import EventPublic, JobCountPublic, JobPublic, StatusName, StopReasonName
from jobpulse.schemas import CancelRequest, ErrorBody, Heartbeat, JobCreate, JobUpdate, UtcDatetime

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 503)
}
ERROR_RESPONSES |= {
    409: {
        "model": ErrorBody,
        "description": "`invalid_transition`: the state machine refuses the change; "
        "`job_cancelled`: the job was cancelled, and its worker should stop "
        "(a heartbeat, first token or change of a cancelled job answers this).",
    }
}
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

JobId = Annotated[str, "the job id, job-<uuid>"]
#: The list filters that are not metadata.<key>.
LIST_PARAMS = frozenset(
    {
        "status",
        "job_type",
        "background",
        "source_id",
        "stop_reason",
        "created_after",
        "created_before",
        "active",
        "stuck",
        "user_id",
        "model",
        "limit",
        "ascending",
        "before",
        "after",
    }
)


T = TypeVar("T")
_JOB_JSON = TypeAdapter(Job)
_JOBS_JSON = TypeAdapter(list[Job])


def job_response(job: Job, status_code: int = 200) -> Response:
    """A job as a JSON response (see `job_json`)."""
    return Response(job_json(job), status_code=status_code, media_type="application/json")


def job_json(job: Job) -> bytes:
    """A job as JSON, serialized straight from the domain object (the fields of JobPublic)."""
    return _json(_JOB_JSON, job, lambda: _showable(job))


def _jobs_response(found: list[Job]) -> Response:
    body = _json(_JOBS_JSON, found, lambda: [_showable(job) for job in found])
    return Response(body, media_type="application/json")


def _json(adapter: TypeAdapter[T], value: T, showable: Callable[[], T]) -> bytes:
    """`value` as JSON; if stored metadata cannot be (too deep, from before the JSON
    policy), the `showable` form of it instead.
    """
    try:
        return adapter.dump_json(value)
    except ValueError:
        return adapter.dump_json(showable())


def _showable(job: Job) -> Job:
    """`job` with metadata stored before the JSON policy (too deep to serialize) cut to it:
    one such row must not fail the listing it is in.
    """
    metadata = job.metadata
    return replace(job, metadata=repaired(metadata) if isinstance(metadata, dict) else {})


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobPublic)
async def create_job(
    body: JobCreate,
    caller: Authenticated,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> Response:
    """Create a job; a retry with the same Idempotency-Key returns the same job."""
    job = await caller.jobs.create_job(
        caller.actor, **body.model_dump(), idempotency_key=idempotency_key
    )
    return job_response(job, status.HTTP_201_CREATED)


Text = Annotated[str | None, Query(min_length=1, max_length=255)]
Stamp = Annotated[UtcDatetime | None, Query()]


class JobFilterQuery:
    """The dependency reading a JobFilter from the query string; parameters other than the
    filters and `allowed` are refused.
    """

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    async def __call__(
        self,
        request: Request,
        status: Annotated[list[StatusName] | None, Query(description="repeatable")] = None,
        job_type: Text = None,
        background: bool | None = None,
        source_id: Text = None,
        stop_reason: StopReasonName | None = None,
        created_after: Stamp = None,
        created_before: Stamp = None,
        active: bool | None = None,
        stuck: bool | None = None,
        user_id: Text = None,
        model: Annotated[
            str | None, Query(min_length=1, max_length=128, description="has an LLM call of it")
        ] = None,
    ) -> JobFilter:
        """The filters of a listing or count; also `metadata.<key>=<value>` (string values)."""
        metadata: dict[str, str] = {}
        for name, value in request.query_params.multi_items():
            if (problem := text_problem(value)) is not None:
                raise ValidationError(f"query parameter {name!r} {problem}")
            if name.startswith("metadata."):
                metadata[name.removeprefix("metadata.")] = value
            elif name not in self.allowed and name != ACCESS_TOKEN:  # the caller's: see deps
                raise ValidationError(f"unknown query parameter {name!r}")
        return JobFilter(
            statuses=None if not status else frozenset(parse_status(s) for s in status),
            job_type=job_type,
            background=background,
            source_id=source_id,
            stop_reason=None if stop_reason is None else parse_stop_reason(stop_reason),
            created_after=created_after,
            created_before=created_before,
            active=active,
            stuck=stuck,
            user_id=user_id,
            model=model,
            metadata=metadata,
        )


Filters = Annotated[JobFilter, Depends(JobFilterQuery(LIST_PARAMS))]


@router.get("", response_model=list[JobPublic])
async def list_jobs(
    query: Filters,
    caller: Authenticated,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = PAGE_LIMIT_DEFAULT,
    ascending: bool = False,
    before: Text = None,
    after: Text = None,
) -> Response:
    """One page of jobs, newest first unless `ascending`.

    `before` and `after` are job ids: the page returned is the one next to them (`before` =
    created earlier). Also filters on `metadata.<key>=<value>` (string values).
    """
    page = Page(limit=limit, ascending=ascending, before=before, after=after)
    return _jobs_response(await caller.jobs.list_jobs(caller.actor, query, page))


@router.get("/count", response_model=JobCountPublic)
async def count_jobs(query: Filters, caller: Authenticated) -> JobCountPublic:
    """How many jobs match the listing's filters, in all and per status."""
    count = await caller.jobs.count_jobs(caller.actor, query)
    by_status = {status.value: number for status, number in count.by_status.items()}
    return JobCountPublic.model_validate({"total": count.total, "by_status": by_status})


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: JobId, caller: Reader) -> Response:
    """One job (also for a scoped token whose scope holds it)."""
    return job_response(caller.check(await caller.jobs.get_job(caller.actor, job_id)))


@router.patch("/{job_id}", response_model=JobPublic)
async def update_job(job_id: JobId, body: JobUpdate, caller: Authenticated) -> Response:
    """Change status, stop reason, metadata (merged; null removes a key) or timings."""
    changes = body.model_dump(exclude_unset=True)
    return job_response(await caller.jobs.update_job(caller.actor, job_id, **changes))


@router.post("/{job_id}/cancel", response_model=JobPublic)
async def cancel_job(
    job_id: JobId,
    caller: Authenticated,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Response:
    """Cancel the job; 409 if it has already ended."""
    reason = body.reason if body else None
    return job_response(await caller.jobs.cancel_job(caller.actor, job_id, reason=reason))


@router.post("/{job_id}/heartbeat", response_model=JobPublic)
async def heartbeat(
    job_id: JobId,
    caller: Authenticated,
    body: Annotated[Heartbeat | None, Body()] = None,
) -> Response:
    """Say the job is alive, optionally merging progress into its metadata."""
    return job_response(
        await caller.jobs.heartbeat(caller.actor, job_id, body.progress if body else None)
    )


@router.post("/{job_id}/first-token", response_model=JobPublic)
async def first_token(job_id: JobId, caller: Authenticated) -> Response:
    """Record the time to first token as of now (once)."""
    return job_response(await caller.jobs.record_first_token(caller.actor, job_id))


@router.get("/{job_id}/events", response_model=list[EventPublic])
async def list_events(job_id: JobId, caller: Authenticated) -> list[EventPublic]:
    """The status history, oldest first, rejected attempts included."""
    events = await caller.jobs.list_events(caller.actor, job_id)
    return [EventPublic.model_validate(event, from_attributes=True) for event in events]


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_job(job_id: JobId, caller: Authenticated) -> Response:
    """Delete the job and its history."""
    await caller.jobs.delete_job(caller.actor, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
