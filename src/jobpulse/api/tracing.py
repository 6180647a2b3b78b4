"""One span per HTTP request, carrying the attributes of DESIGN §5, and its duration in the
HTTP server histogram.
"""

from __future__ import annotations

import time

from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobpulse.telemetry import tracer


class RequestSpans:
    """ASGI middleware: one span per request, named by route, with the attributes of DESIGN §5.

    `user.id` and `organization.id` are added by authentication, `job.id` from the path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            # No tracing configured: only the duration histogram.
            await self._untraced(scope, receive, send, started)
            return
        status = 500
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        parent = propagate.extract(headers)
        method = scope["method"]
        with tracer().start_as_current_span(
            f"{method} {scope['path']}", context=parent, kind=trace.SpanKind.SERVER
        ) as span:
            span.set_attribute("http.method", method)

            async def observed(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, observed)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", None)
                if path:
                    span.update_name(f"{method} {path}")
                    span.set_attribute("http.route", path)
                self._observe(scope, method, path or "unmatched", status, started)
                job_id = scope.get("path_params", {}).get("job_id")
                if job_id:
                    span.set_attribute("job.id", job_id)

    async def _untraced(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            path = getattr(scope.get("route"), "path", None) or "unmatched"
            self._observe(scope, scope["method"], path, status, started)

    @staticmethod
    def _observe(scope: Scope, method: str, route: str, status: int, started: float) -> None:
        jobs = getattr(scope["app"].state, "jobs", None)
        if jobs is not None:
            elapsed = time.perf_counter() - started
            jobs.metrics.http_duration.labels(method, route, str(status)).observe(elapsed)
