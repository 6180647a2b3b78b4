"""Tracing through opentelemetry-api: request spans, `trace_method` for service methods, and
the trace context carried from the request that ended a job to its webhook delivery.
The SDK and exporters are wired by `setup_tracing`, called by `serve`; tests bring their own.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, Status, StatusCode

P = ParamSpec("P")
R = TypeVar("R")
VALUE_LIMIT = 2 * 1024
SPAN_BUDGET = 16 * 1024
SECRET_WORDS = ("key", "secret", "token", "password", "authorization")


def tracer() -> trace.Tracer:
    """jobpulse's tracer from the current provider."""
    return trace.get_tracer("jobpulse")


def setup_tracing(console: bool = False) -> None:
    """OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, the console when asked, else nothing."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint and not console:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "jobpulse"}))
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if console:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def attribute_value(name: str, value: Any) -> str | int | float | bool:
    """A parameter as a span attribute: secrets redacted, large values cut or summarised."""
    if any(word in name.lower() for word in SECRET_WORDS):
        return "[REDACTED]"
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping | list | tuple | set) and len(value) > 50:
        return f"{type(value).__name__} of {len(value)} items"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > VALUE_LIMIT:
        return f"{text[:VALUE_LIMIT]}… ({len(text)} characters)"
    return text


def record_parameters(span: Span, parameters: Mapping[str, Any]) -> None:
    """Set `parameter.<name>` attributes within the span's size budget."""
    spent = 0
    for name, value in parameters.items():
        shown = attribute_value(name, value)
        size = len(str(shown))
        if spent + size > SPAN_BUDGET:
            span.set_attribute("parameter._truncated", True)
            return
        spent += size
        span.set_attribute(f"parameter.{name}", shown)


def trace_method(
    function: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Run an async method in a span named after it, its parameters recorded safely."""
    signature = inspect.signature(function)
    name = function.__qualname__

    @functools.wraps(function)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        with tracer().start_as_current_span(name, record_exception=False) as span:
            if span.is_recording():
                bound = signature.bind_partial(*args, **kwargs)
                bound.arguments.pop("self", None)
                record_parameters(span, bound.arguments)
            try:
                return await function(*args, **kwargs)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise

    return traced


def current_context() -> dict[str, str]:
    """The current trace context as W3C headers (empty with no active trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
