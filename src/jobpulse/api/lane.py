"""The hot job routes (POST /v1/jobs, GET and PATCH /v1/jobs/{id}) served without FastAPI's
per-request machinery: its routing, dependency solving and body handling cost more than the
whole of a hello-world request before the service was even called.

`JobLane` serves a well-formed request of one of those routes itself: the body is read and
validated once by the route's own pydantic model, the key checked once (by `KeyBeforeBody`
when a body came), the service called, the job's JSON written once. Anything else (another
path, a query string, a scoped token, a body FastAPI would refuse or read otherwise) goes on,
its body replayed, to the FastAPI route, which answers it as it always has. The routes stay
declared in api/jobs.py (OpenAPI, docs); the lane takes only what they would do the same.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pydantic
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobpulse.api import jobs
from jobpulse.api.deps import Caller, bearer_actor, traced
from jobpulse.api.errors import jobpulse_error_response
from jobpulse.api.limits import CHECKED_KEY, replay
from jobpulse.domain import Job
from jobpulse.errors import JobPulseError
from jobpulse.schemas import JobCreate, JobUpdate
from jobpulse.tokens.rules import is_token

PREFIX = "/v1/jobs"
#: Every job id starts so; other names under /v1/jobs/ (stream, count, …) are other routes'.
JOB_ID_START = PREFIX + "/job-"
_JSON = b"application/json"
_IDEMPOTENCY_KEY = b"idempotency-key"

Handler = Callable[[Caller, str, Any, dict[bytes, bytes]], Awaitable[Job]]


@dataclass(frozen=True, slots=True)
class _Hot:
    """One hot route: its FastAPI route (for the request's span and metrics), its body's
    model (None: no body), its success status, and what it does.
    """

    route: APIRoute
    body: type[pydantic.BaseModel] | None
    status: int
    handler: Handler
    #: Whether a scoped token may call it (then the FastAPI route serves those).
    tokens: bool = False


async def _create(
    caller: Caller, _job_id: str, body: JobCreate, headers: dict[bytes, bytes]
) -> Job:
    key = headers.get(_IDEMPOTENCY_KEY)
    idempotency_key = None if key is None else key.decode("latin-1")
    fields = {name: getattr(body, name) for name in JobCreate.model_fields}
    return await caller.jobs.create_job(caller.actor, **fields, idempotency_key=idempotency_key)


async def _read(caller: Caller, job_id: str, _body: None, _headers: dict[bytes, bytes]) -> Job:
    return await caller.jobs.get_job(caller.actor, job_id)


async def _change(caller: Caller, job_id: str, body: JobUpdate, _h: dict[bytes, bytes]) -> Job:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return await caller.jobs.update_job(caller.actor, job_id, **changes)


def _route(endpoint: Callable[..., Any]) -> APIRoute:
    found = [r for r in jobs.router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint]
    assert len(found) == 1, f"no single route serves {endpoint.__name__}"
    return found[0]


class JobLane:
    """ASGI middleware: the hot job routes, served directly when the FastAPI route would
    do the same (see the module's docstring); placed inside the limits and the request span.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.create = _Hot(_route(jobs.create_job), JobCreate, 201, _create)
        self.read = _Hot(_route(jobs.get_job), None, 200, _read, tokens=True)
        self.change = _Hot(_route(jobs.update_job), JobUpdate, 200, _change)

    def _hot(self, scope: Scope) -> tuple[_Hot | None, str]:
        """The hot route of the request, and its job id ('' for a create)."""
        if scope["type"] != "http" or scope["query_string"] or scope.get("root_path"):
            return None, ""
        path: str = scope["path"]
        method: str = scope["method"]
        if path == PREFIX:
            return (self.create if method == "POST" else None), ""
        if not path.startswith(JOB_ID_START) or "/" in path[len(PREFIX) + 1 :]:
            return None, ""
        job_id = path[len(PREFIX) + 1 :]
        if method == "PATCH":
            return self.change, job_id
        return (self.read if method == "GET" else None), job_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot, job_id = self._hot(scope)
        if hot is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # the first of a repeated header is the last here
        if len(headers) != len(scope["headers"]):
            await self.app(scope, receive, send)  # repeated headers: FastAPI reads the first
            return
        messages: list[Message] = []
        body: Any = None
        if hot.body is not None:
            body = await _body(hot.body, headers, receive, messages)
            if not isinstance(body, pydantic.BaseModel):
                await self.app(scope, replay(messages, receive, body), send)
                return
        if not _plain(hot, headers):
            await self.app(scope, replay(messages, receive), send)
            return
        scope["route"] = hot.route
        if job_id:
            scope["path_params"] = {"job_id": job_id}
        try:
            caller = await _caller(scope, headers)
            job = await hot.handler(caller, job_id, body, headers)
        except JobPulseError as error:
            await jobpulse_error_response(error)(scope, receive, send)
            return
        content = jobs.job_json(job)
        start = [(b"content-length", str(len(content)).encode()), (b"content-type", _JSON)]
        await send({"type": "http.response.start", "status": hot.status, "headers": start})
        await send({"type": "http.response.body", "body": content})


def _plain(hot: _Hot, headers: dict[bytes, bytes]) -> bool:
    """Whether the request's headers ask nothing of the FastAPI route that the lane does not
    do: a scoped token (where one may read), an Idempotency-Key its length would refuse.
    """
    if hot.tokens:
        _scheme, _, secret = headers.get(b"authorization", b"").partition(b" ")
        return not is_token(secret.strip().decode("latin-1"))
    key = headers.get(_IDEMPOTENCY_KEY)
    return key is None or 1 <= len(key) <= 255


async def _body(
    model: type[pydantic.BaseModel],
    headers: dict[bytes, bytes],
    receive: Receive,
    messages: list[Message],
) -> pydantic.BaseModel | BaseException | None:
    """The request's body as `model`; None if FastAPI would do anything but take it so
    (refuse it, or read it another way), or what reading it raised. Every message received
    is kept in `messages`.
    """
    chunks = []
    while True:
        try:
            message = await receive()
        except Exception as error:  # a limit (BodySizeLimit): FastAPI's route answers it
            return error
        messages.append(message)
        if message["type"] != "http.request":
            return None  # a disconnect: FastAPI's route says so
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if headers.get(b"content-type") != _JSON:
        return None
    try:
        # FastAPI's parser: orjson would read an integer past 64 bits as a float.
        return model.model_validate(json.loads(b"".join(chunks)))
    except (ValueError, RecursionError):  # not JSON (or too deep), or not the model
        return None


async def _caller(scope: Scope, headers: dict[bytes, bytes]) -> Caller:
    """The caller, as `BearerKey` finds it (`KeyBeforeBody` may have already)."""
    app: FastAPI = scope["app"]
    checked = scope.get(CHECKED_KEY)
    if checked is None:
        authorization = headers.get(b"authorization")
        text = None if authorization is None else authorization.decode("latin-1")
        checked = await bearer_actor(app.state.keys, text)
    actor, digest = checked
    traced(actor)
    return Caller(actor, app.state.jobs, digest)
