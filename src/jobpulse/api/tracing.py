"""One span per HTTP request, carrying the attributes of DESIGN §5, and its duration in the
HTTP server histogram.
"""

from __future__ import annotations

import contextlib
import time

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobpulse.telemetry import tracer, tracing_enabled


class RequestSpans:
    """ASGI middleware: one span per request, named by route, with the attributes of DESIGN §5.

    `user.id` and `organization.id` are added by authentication, `job.id` from the path. The
    span's attributes are set in one call when the response is done: each call to the SDK
    takes its lock and checks the values, and this runs on every request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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

        span_cm = _request_span(scope) if tracing_enabled() else contextlib.nullcontext()
        with span_cm as span:
            try:
                await self.app(scope, receive, observed)
            finally:
                route = getattr(scope.get("route"), "path", None)
                _observe(scope, route or "unmatched", status, started)
                if span is not None and span.is_recording():
                    _finish(span, scope, route, status)


def _request_span(scope: Scope) -> contextlib.AbstractContextManager[Span]:
    """A server span continuing the caller's trace (W3C headers), named by path until routed."""
    return tracer().start_as_current_span(
        f"{scope['method']} {scope['path']}",
        context=_caller_context(scope),
        kind=trace.SpanKind.SERVER,
    )


#: The headers the propagators read (traceparent, tracestate, baggage by default).
PROPAGATED = frozenset(name.encode("latin-1") for name in propagate.get_global_textmap().fields)


def _caller_context(scope: Scope) -> Context:
    """The trace context the caller sent (empty if none: the request starts a trace)."""
    if not any(key in PROPAGATED for key, _value in scope["headers"]):
        return Context()
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    return propagate.extract(headers)


def _finish(span: Span, scope: Scope, route: str | None, status: int) -> None:
    attributes: dict[str, AttributeValue] = {
        "http.method": scope["method"],
        "http.status_code": status,
    }
    if route:
        span.update_name(f"{scope['method']} {route}")
        attributes["http.route"] = route
    job_id = scope.get("path_params", {}).get("job_id")
    if job_id:
        attributes["job.id"] = job_id
    span.set_attributes(attributes)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _observe(scope: Scope, route: str, status: int, started: float) -> None:
    jobs = getattr(scope["app"].state, "jobs", None)
    if jobs is not None:
        elapsed = time.perf_counter() - started
        jobs.metrics.request_served(scope["method"], route, status, elapsed)
