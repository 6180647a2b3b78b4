"""Tracing through opentelemetry-api: the tracer provider, `trace_method` for service methods,
and the trace context carried from the request that ended a job to its webhook delivery.
The SDK and exporters are wired by `setup_tracing`, called by `serve`; tests bring their own.

A request is one span by default (`request_spans.RequestSpan`): the service method it calls
writes its name and parameters there rather than opening a span of its own, which would
double what tracing a request costs; the caller and the job it names are the span's
`user.id`, `organization.id` and `job.id` rather than parameters. Outside a request, or with
`trace_inner_spans`, each traced method has its own span.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from jobpulse.request_spans import serving

P = ParamSpec("P")
R = TypeVar("R")
VALUE_LIMIT = 2 * 1024
SPAN_BUDGET = 16 * 1024
SECRET_WORDS = ("key", "secret", "token", "password", "authorization")


#: The tracer provider, once found; and whether `setup_tracing` has settled the question.
_provider: trace.TracerProvider | None = None
_decided = False


def active_provider() -> trace.TracerProvider | None:
    """The tracer provider once one is set, else None (every span would be a no-op).

    Kept once found, since a process sets its provider once (OpenTelemetry refuses a second),
    and not looked for again after `setup_tracing`: the API's lookup reads the environment
    each time no provider is set, twice a request.
    """
    global _provider
    if _provider is None and not _decided:
        provider = trace.get_tracer_provider()
        if type(provider) is not trace.ProxyTracerProvider:
            _provider = provider
    return _provider


def tracing_enabled() -> bool:
    """Whether spans are recorded (a tracer provider has been set)."""
    return active_provider() is not None


def tracer() -> trace.Tracer:
    """jobpulse's tracer from the current provider (a no-op one while there is none)."""
    provider = active_provider()
    return trace.NoOpTracer() if provider is None else _tracer_of(provider)


@functools.cache
def _tracer_of(provider: trace.TracerProvider) -> trace.Tracer:
    # Once per provider: the SDK compares instrumentation scopes on every get_tracer call,
    # which cost a tenth of a traced request.
    return provider.get_tracer("jobpulse")


def setup_tracing(console: bool = False) -> None:
    """OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, the console when asked, else nothing
    (unless a provider was set before, as `opentelemetry-instrument` does). The process's
    tracing is decided from here on.
    """
    global _decided
    _install_exporters(console)
    active_provider()
    _decided = True


def _install_exporters(console: bool) -> None:
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


#: Parameters a request's span shows under names of its own rather than as `parameter.<name>`:
#: the caller is its `user.id` and `organization.id` (noted by authentication), the job its
#: `job.id`. Spans of their own (outside requests, or with inner spans) show every parameter.
REQUEST_NOTED = frozenset({"actor", "job_id"})


@functools.cache
def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def attribute_value(name: str, value: Any) -> AttributeValue:
    """A parameter as a span attribute: secrets redacted, large values cut or summarised."""
    if _is_secret(name):
        return "[REDACTED]"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float):
        return value
    elif isinstance(value, Mapping | list | tuple | set) and len(value) > 50:
        return f"{type(value).__name__} of {len(value)} items"
    else:
        text = repr(value)
    if len(text) > VALUE_LIMIT:
        return f"{text[:VALUE_LIMIT]}… ({len(text)} characters)"
    return text


def parameter_attributes(parameters: Iterable[tuple[str, Any]]) -> dict[str, AttributeValue]:
    """`parameter.<name>` attributes, as many as fit in the span's size budget."""
    attributes: dict[str, AttributeValue] = {}
    spent = 0
    for name, value in parameters:
        shown = attribute_value(name, value)
        spent += len(shown) if isinstance(shown, str) else 8
        if spent > SPAN_BUDGET:
            attributes["parameter._truncated"] = True
            break
        attributes[f"parameter.{name}"] = shown
    return attributes


@dataclass(frozen=True, slots=True)
class _Parameters:
    """A traced method's parameters, and how its arguments become span attributes."""

    names: tuple[str, ...]
    #: Positional arguments to skip (`self`).
    skip: int
    #: Positions of the parameters a request's span shows (see REQUEST_NOTED), the job id's.
    shown: tuple[int, ...]
    job_at: int | None

    @classmethod
    def of(cls, function: Callable[..., Any]) -> _Parameters:
        names = tuple(inspect.signature(function).parameters)
        skip = 1 if names[:1] == ("self",) else 0
        names = names[skip:]
        shown = tuple(i for i, name in enumerate(names) if name not in REQUEST_NOTED)
        job_at = names.index("job_id") if "job_id" in names else None
        return cls(names, skip, shown, job_at)

    def all(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, AttributeValue]:
        """Every argument as `parameter.<name>` (arguments paired with names directly, no
        `Signature.bind`: this runs on every call).
        """
        given = zip(self.names, args[self.skip :], strict=False)
        return parameter_attributes(chain(given, kwargs.items()))

    def on_request(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, AttributeValue]:
        """The arguments as a request's span shows them: the job id as `job.id`, the caller
        not at all (REQUEST_NOTED).
        """
        given = args[self.skip :]
        pairs = [(self.names[i], given[i]) for i in self.shown if i < len(given)]
        pairs += [pair for pair in kwargs.items() if pair[0] not in REQUEST_NOTED]
        recorded = parameter_attributes(pairs)
        at = self.job_at
        job_id = kwargs.get("job_id", given[at] if at is not None and at < len(given) else None)
        if isinstance(job_id, str):
            recorded["job.id"] = attribute_value("job_id", job_id)
        return recorded


def trace_method(
    function: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Run an async method in a span named after it, its parameters recorded safely; inside a
    request, record them on the request's span instead (`code.function.name` naming the
    method), unless it asks for inner spans.

    This runs on every service call, so it is kept to the SDK's own cost: arguments are paired
    with parameter names directly (`_Parameters`) and set in one call, and the span is made
    current by attaching it to the context (no context-manager generators).
    """
    parameters = _Parameters.of(function)
    name = function.__qualname__
    attributes = parameters.all

    async def in_own_span(
        provider: trace.TracerProvider, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        span = _tracer_of(provider).start_span(name)
        if span.is_recording():  # not when the sampler left this trace out
            span.set_attributes(attributes(args, kwargs))
        token = context.attach(trace.set_span_in_context(span))
        try:
            return await function(*args, **kwargs)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        finally:
            context.detach(token)
            span.end()

    @functools.wraps(function)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
        provider = active_provider()
        request = serving()
        if provider is None or (request is not None and request.claimed):
            return await function(*args, **kwargs)
        if request is None or request.inner_spans:
            return await in_own_span(provider, args, kwargs)
        request.claimed = True
        if request.recording:
            request.attributes.update(parameters.on_request(args, kwargs))
            request.attributes["code.function.name"] = name
        try:
            return await function(*args, **kwargs)
        except Exception as exc:
            request.record(exc)  # its status is the answer's (api/tracing.py)
            raise

    return traced


def trace_headers(trace_context: context.Context) -> dict[str, str] | None:
    """A trace context (from `opentelemetry.context.get_current`) as W3C headers, None when it
    holds no trace.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace_context)
    return carrier or None
