"""Server-Sent Events of applied history events: every job of the caller's view under the
list filters (`GET /v1/jobs/stream`), or one job (`GET /v1/jobs/{id}/stream`).

Each event's `id:` is its position (see storage/events.py): a client that reconnects with
`Last-Event-ID` (browsers do it by themselves), or `?last_event_id=`, gets every event after
it exactly once. A comment every 15 s keeps proxies from closing an idle stream; a client
too slow to take what comes gets `event: overflow` and the stream ends (reconnect to resume).
A stream lasts as long as the key (or dashboard session) that opened it: once revoked, it
gets `event: revoked` and ends within a few seconds on every replica (see jobpulse.grants).
A scoped token reads both streams within its scope; its stream stands on its issuing key,
and gets `event: expired` and ends when the token expires.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from jobpulse.api.deps import Caller, Reader
from jobpulse.api.jobs import ERROR_RESPONSES, LIST_PARAMS, JobFilterQuery, JobId
from jobpulse.domain import Actor, Job
from jobpulse.errors import ValidationError
from jobpulse.feed import EventFeed, RevokedError, TooSlowError
from jobpulse.grants import Grants
from jobpulse.listing import JobFilter
from jobpulse.storage.events import Happened, Position

#: Seconds between keep-alive comments.
PING_S = 15
#: The query parameters of a stream besides the list filters.
STREAM_PARAMS = (LIST_PARAMS - {"limit", "ascending", "before", "after"}) | {
    "last_event_id",
    "heartbeats",
}

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)
StreamFilters = Annotated[JobFilter, Depends(JobFilterQuery(STREAM_PARAMS))]
_DESCRIPTION: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`: one `data:` JSON object per applied history "
        "event (its fields and the job's type), `id:` its position; `event: overflow` "
        "before the end of a stream the client could not keep up with. Fetch a job for "
        "the rest of it.",
        "content": {"text/event-stream": {}},
    }
}


def _resume_from(header: str | None, query: str | None) -> Position | None:
    given = query if query is not None else header
    if given is None or not given.strip():
        return None
    position = Position.parse(given)
    if position is None:
        raise ValidationError(f"Last-Event-ID {given[:64]!r} is not a stream position")
    return position


def encode(happened: Happened) -> bytes:
    """One event as SSE."""
    event = happened.event
    data = {
        "event_id": event.id,
        "job_id": event.job_id,
        "job_type": happened.job.job_type,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "stop_reason": event.stop_reason,
        "reason": event.reason,
        "actor": event.actor,
        "at": event.at,
    }
    return ServerSentEvent(orjson.dumps(data).decode(), id=str(happened.position)).encode()


def encode_beat(job: Job) -> bytes:
    """A heartbeat as SSE: `event: heartbeat`, no id (heartbeats are not history)."""
    data = {"job_id": job.id, "job_type": job.job_type, "at": job.heartbeat_at}
    return ServerSentEvent(orjson.dumps(data).decode(), event="heartbeat").encode()


@dataclass(frozen=True, slots=True)
class Standing:
    """What a stream stands on: the key it was opened with (its hash), and the dashboard
    session, if it is the dashboard's; and where such grants are rechecked.
    """

    grants: Grants
    key_hash: str
    session_id: str | None = None
    #: When a scoped token's stream ends, its token expired (None: with its key only).
    expires_at: datetime | None = None


async def server_events(
    feed: EventFeed,
    actor: Actor,
    query: JobFilter,
    after: Position | None,
    standing: Standing,
    heartbeats: bool = False,
) -> AsyncIterator[bytes | ServerSentEvent]:
    """The actor's events under `query` as SSE, `overflow` if the client falls behind, and
    `revoked` when what it stands on is.
    """
    grant = standing.grants.hold(standing.key_hash, standing.session_id)
    expired = _expire_at(standing.expires_at, grant.end)
    try:
        async for encoded in feed.follow(actor, query, after, heartbeats, grant):
            yield encoded
    except TooSlowError:
        yield ServerSentEvent(
            '{"reason": "the client fell behind; reconnect with Last-Event-ID"}',
            event="overflow",
        )
    except RevokedError:
        if expired is not None and expired.when() <= asyncio.get_running_loop().time():
            yield ServerSentEvent('{"reason": "the token of this stream expired"}', event="expired")
        else:
            yield ServerSentEvent(
                '{"reason": "the key or session of this stream was revoked or ended"}',
                event="revoked",
            )
    finally:
        if expired is not None:
            expired.cancel()
        standing.grants.release(grant)


def _expire_at(expires_at: datetime | None, end: Callable[[], None]) -> asyncio.TimerHandle | None:
    """Call `end` at `expires_at` (on this event loop's clock), if given."""
    if expires_at is None:
        return None
    loop = asyncio.get_running_loop()
    delay = (expires_at - datetime.now(expires_at.tzinfo)).total_seconds()
    return loop.call_at(loop.time() + max(delay, 0.0), end)


def _response(
    request: Request, caller: Caller, query: JobFilter, after: Position | None, heartbeats: bool
) -> EventSourceResponse:
    feed: EventFeed = request.app.state.feed
    expires_at = None if caller.token is None else caller.token.expires_at
    standing = Standing(request.app.state.keys.grants, caller.key_hash, expires_at=expires_at)
    query = caller.narrow(query)
    return EventSourceResponse(
        server_events(feed, caller.actor, query, after, standing, heartbeats),
        ping=PING_S,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _resume(
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
    query: Annotated[str | None, Query(alias="last_event_id", max_length=64)] = None,
) -> Position | None:
    """Where a stream resumes: `?last_event_id=` or the `Last-Event-ID` header (None: now)."""
    return _resume_from(last_event_id, query)


Resume = Annotated[Position | None, Depends(_resume)]


#: `heartbeats=true` adds `event: heartbeat` messages (no id: not resumed after a reconnect).
Heartbeats = Annotated[bool, Query(description="also send heartbeats (not resumable)")]


@router.get("/stream", responses=_DESCRIPTION, response_model=None)
async def stream_jobs(
    request: Request,
    query: StreamFilters,
    caller: Reader,
    after: Resume,
    heartbeats: Heartbeats = False,
) -> EventSourceResponse:
    """Live history events of the jobs you may see under the list filters (a scoped
    token: within its scope).
    """
    return _response(request, caller, query, after, heartbeats)


@router.get("/{job_id}/stream", responses=_DESCRIPTION, response_model=None)
async def stream_job(
    request: Request,
    job_id: JobId,
    caller: Reader,
    after: Resume,
    heartbeats: Heartbeats = False,
) -> EventSourceResponse:
    """Live history events of one job (a worker can wait here for its cancellation; a
    browser can follow it with a scoped token).
    """
    caller.check(await caller.jobs.get_job(caller.actor, job_id))  # 404 unless visible
    return _response(request, caller, JobFilter(job_id=job_id), after, heartbeats)
