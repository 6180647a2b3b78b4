"""The hot job routes (POST /v1/jobs, GET and PATCH /v1/jobs/{id}) served without FastAPI's
per-request machinery: its routing, dependency solving and body handling cost more than the
whole of a hello-world request before the service was even called, and the middleware stack
every request passes (Starlette's, FastAPI's, jobpulse's) a tenth of a transition's Python.

`JobLane` sits ahead of that stack and serves a well-formed request of one of those routes
itself, doing what the stack would do to it: the key checked before the body is read (as
`KeyBeforeBody`), a body of declared length within the limit (`BodySizeLimit`), the request's
span and metrics (`RequestSpans`), errors answered as the app's handlers answer them. The
body is read and validated once by the route's own pydantic model, the key checked once, the
service called, the job's JSON written once (with `ApiCors`'s headers where CORS is on).
Anything else (another path, a query string, a scoped token, a body the stack or FastAPI
would refuse or read otherwise) goes on, its body replayed, through the stack to the FastAPI
route, which answers it as it always has. The routes stay declared in api/jobs.py (OpenAPI,
docs); the lane takes only what they would do the same.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobpulse.api import jobs
from jobpulse.api.cors import cors_middleware
from jobpulse.api.deps import Caller, bearer_actor, traced
from jobpulse.api.errors import jobpulse_error_response, unexpected_error_response
from jobpulse.api.limits import replay
from jobpulse.api.tracing import end_request, start_request
from jobpulse.domain import Actor, Job
from jobpulse.errors import JobPulseError
from jobpulse.schemas import JobCreate, JobUpdate
from jobpulse.telemetry import tracing_enabled
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
    """ASGI app ahead of the app's whole middleware stack (`app`): the hot job routes, served
    directly when the FastAPI route would do the same (see the module's docstring), with
    what the stack does to them (limits, key before body, request span and metrics, errors);
    anything else goes to the stack.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        inner_spans: bool = False,
        origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.inner_spans = inner_spans
        #: `ApiCors`'s headers on the answers the lane sends, where the app answers origins.
        self.cors = cors_middleware(app, origins) if origins else None
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
        if len(headers) != len(scope["headers"]) or not self._plain(hot, headers):
            await self.app(scope, receive, send)  # repeated headers: FastAPI reads the first
            return
        started = time.perf_counter()
        begun = time.time_ns() if tracing_enabled() else None
        body: Any = None
        checked = None
        if hot.body is not None:
            # `KeyBeforeBody`: a body is read only for a valid key (the stack answers others).
            checked = await _key(scope, headers)
            if checked is None:
                await self.app(scope, receive, send)
                return
            messages: list[Message] = []
            body = await _body(hot.body, headers, receive, messages, self.max_bytes)
            if not isinstance(body, pydantic.BaseModel):
                await self.app(scope, replay(messages, receive, body), send)
                return
        scope["route"] = hot.route
        if job_id:
            scope["path_params"] = {"job_id": job_id}
        # What `RequestSpans` does around the rest, then `ServerErrorMiddleware` (its 500).
        request = start_request(scope, self.inner_spans, begun)
        answer = _Answer(scope, receive, send if self.cors is None else self._cors(scope, send))
        try:
            await answer.job(hot, job_id, body, headers, checked)
        except Exception as exc:
            if request is not None:
                request.fail(exc)
            if not answer.started:
                await unexpected_error_response(Request(scope), exc)(scope, receive, send)
            raise
        finally:
            end_request(scope, request, answer.status, started)

    def _cors(self, scope: Scope, send: Send) -> Send:
        """`send` with the CORS headers `ApiCors` adds to an answer (`Vary: Origin` at least)."""
        assert self.cors is not None
        return functools.partial(self.cors.send, send=send, request_headers=Headers(scope=scope))

    def _plain(self, hot: _Hot, headers: dict[bytes, bytes]) -> bool:
        """Whether the request's headers ask nothing of the stack or the FastAPI route that
        the lane does not do: a body not of a declared length within the limit (none for a
        read), a scoped token (where one may read), an Idempotency-Key its length would
        refuse.
        """
        if b"transfer-encoding" in headers:
            return False
        declared = headers.get(b"content-length")
        if hot.body is None:
            if declared not in (None, b"0"):
                return False
        elif declared is None or not declared.isdigit() or not 0 < int(declared) <= self.max_bytes:
            return False
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
    max_bytes: int,
) -> pydantic.BaseModel | BaseException | None:
    """The request's body as `model`; None if the stack or FastAPI would do anything but
    take it so (refuse it, or read it another way), or what reading it raised. Every message
    received is kept in `messages`.
    """
    chunks = []
    seen = 0
    while True:
        try:
            message = await receive()
        except Exception as error:  # the server's: the stack answers it as it reads it
            return error
        messages.append(message)
        if message["type"] != "http.request":
            return None  # a disconnect: FastAPI's route says so
        chunk = message.get("body", b"")
        chunks.append(chunk)
        seen += len(chunk)
        if seen > max_bytes:
            return None  # more than declared: `BodySizeLimit` answers it
        if not message.get("more_body", False):
            break
    if headers.get(b"content-type") != _JSON:
        return None
    try:
        # FastAPI's parser: orjson would read an integer past 64 bits as a float.
        return model.model_validate(json.loads(b"".join(chunks)))
    except (ValueError, RecursionError):  # not JSON (or too deep), or not the model
        return None


class _Answer:
    """The answer to one request the lane serves, and its status once it has started."""

    __slots__ = ("receive", "scope", "send", "started", "status")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.status = 500  # as `RequestSpans` counts a request that raised before answering
        self.started = False

    async def job(
        self,
        hot: _Hot,
        job_id: str,
        body: Any,
        headers: dict[bytes, bytes],
        checked: tuple[Actor, str] | None,
    ) -> None:
        """The job as the route answers it, or its JobPulseError (the caller's too) as the
        app's handler does.
        """
        try:
            caller = await _caller(self.scope, headers, checked)
            job = await hot.handler(caller, job_id, body, headers)
        except JobPulseError as error:
            response = jobpulse_error_response(error)
            self.status, self.started = response.status_code, True
            await response(self.scope, self.receive, self.send)
            return
        content = jobs.job_json(job)
        start = [(b"content-length", str(len(content)).encode()), (b"content-type", _JSON)]
        self.status, self.started = hot.status, True
        await self.send({"type": "http.response.start", "status": hot.status, "headers": start})
        await self.send({"type": "http.response.body", "body": content})


async def _key(scope: Scope, headers: dict[bytes, bytes]) -> tuple[Actor, str] | None:
    """The caller and its key's SHA-256, as `KeyBeforeBody` checks them before a body is
    read; None if it would not let the request through as it is (it answers those).
    """
    authorization = headers.get(b"authorization")
    text = None if authorization is None else authorization.decode("latin-1")
    try:
        return await bearer_actor(scope["app"].state.keys, text)
    except JobPulseError:
        return None


async def _caller(
    scope: Scope, headers: dict[bytes, bytes], checked: tuple[Actor, str] | None
) -> Caller:
    """The caller, as `BearerKey` finds it (`_key` may have already)."""
    app: FastAPI = scope["app"]
    if checked is None:
        authorization = headers.get(b"authorization")
        text = None if authorization is None else authorization.decode("latin-1")
        checked = await bearer_actor(app.state.keys, text)
    actor, digest = checked
    traced(actor)
    return Caller(actor, app.state.jobs, digest)
