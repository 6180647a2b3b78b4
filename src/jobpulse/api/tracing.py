"""One span per HTTP request, carrying the attributes of DESIGN §5 and the parameters of the
service call it made, and its duration in the HTTP server histogram.
"""

from __future__ import annotations

import time

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobpulse.request_spans import RequestSpan
from jobpulse.telemetry import tracer, tracing_enabled


class RequestSpans:
    """ASGI middleware: one span per request, named by route, with the attributes of DESIGN §5.

    `user.id` and `organization.id` are added by authentication, `job.id` from the path, and
    the name and parameters of the service method the route calls by that method
    (`trace_method`), unless `inner_spans` gives it a span of its own under the request's.
    """

    def __init__(self, app: ASGIApp, inner_spans: bool = False) -> None:
        self.app = app
        self.inner_spans = inner_spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        request = start_request(scope, self.inner_spans)
        try:
            await self.app(scope, receive, observed)
        except Exception as exc:
            if request is not None:
                request.fail(exc)
            raise
        finally:
            end_request(scope, request, status, started)


def start_request(
    scope: Scope, inner_spans: bool, start_time: int | None = None
) -> RequestSpan | None:
    """The request's span, if tracing is on: a server span continuing the caller's trace
    (W3C headers), named by path until routed, current while the request is served; begun
    at `start_time` (ns since the epoch) if given, else now.
    """
    if not tracing_enabled():
        return None
    name = f"{scope['method']} {scope['path']}"
    return RequestSpan(name, _caller_context(scope), tracer(), inner_spans, start_time)


def end_request(scope: Scope, request: RequestSpan | None, status: int, started: float) -> None:
    """The request's duration (since `started`, by perf_counter) into the HTTP histogram, by
    its route (`scope["route"]`) and `status`; its span, if any, ended with its attributes.
    """
    route = getattr(scope.get("route"), "path", None)
    _observe(scope, route or "unmatched", status, started)
    if request is not None:
        _finish(request, scope, route, status)


#: The headers the propagators read (traceparent, tracestate, baggage by default).
PROPAGATED = frozenset(name.encode("latin-1") for name in propagate.get_global_textmap().fields)


def _caller_context(scope: Scope) -> Context:
    """The trace context the caller sent (empty if none: the request starts a trace)."""
    if PROPAGATED.isdisjoint(dict(scope["headers"])):  # no generator: this runs every request
        return Context()
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    return propagate.extract(headers)


def _finish(request: RequestSpan, scope: Scope, route: str | None, status: int) -> None:
    if request.recording:
        attributes = request.attributes
        attributes["http.method"] = scope["method"]
        attributes["http.status_code"] = status
        if route:
            attributes["http.route"] = route
        job_id = scope.get("path_params", {}).get("job_id")
        if job_id:
            attributes["job.id"] = job_id
        if status >= 500:
            request.error = request.error or Status(StatusCode.ERROR)
    request.end(f"{scope['method']} {route}" if route else None)


def _observe(scope: Scope, route: str, status: int, started: float) -> None:
    jobs = getattr(scope["app"].state, "jobs", None)
    if jobs is not None:
        elapsed = time.perf_counter() - started
        jobs.metrics.request_served(scope["method"], route, status, elapsed)
