"""The span of each HTTP request: made when the request has ended, with those of the requests
that end beside it, unless something asks for it sooner; and the attributes the request's
layers note on it meanwhile (`note`; `telemetry.trace_method` adds its service call's).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token

from opentelemetry import context, trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue


class RequestSpan:
    """The span of an HTTP request while it is served, and the attributes gathered for it.

    The SDK makes it when the request has ended, from everything gathered, in one call and
    with the spans of the other requests that end within `BATCH_S` (`make_ended_spans`): made
    one at a time as their requests ran, the same spans cost a loaded server about a third
    more CPU (docs/performance.md). Until then the context holds a `SpanOnDemand`: anything that
    asks for the span's ids (a child span, a log line, a callback's traceparent) makes the
    span there and then, begun when the request was, and the request ends it.

    The first traced service method the request calls adds its name and parameters
    (`claimed`: the methods it calls in turn, as `cancel_job` calls `update_job`, add none),
    unless `inner_spans` gives each its own span.
    """

    __slots__ = (
        "_lock",
        "_made",
        "_tokens",
        "attributes",
        "begun",
        "caller",
        "claimed",
        "error",
        "exceptions",
        "inner_spans",
        "name",
        "tracer",
    )

    def __init__(
        self,
        name: str,
        caller: context.Context,
        tracer: trace.Tracer,
        inner_spans: bool,
        start_time: int | None = None,
    ) -> None:
        self.name = name
        self.tracer = tracer
        self.caller = caller
        self.begun = time.time_ns() if start_time is None else start_time
        self.attributes: dict[str, AttributeValue] = {}
        self.inner_spans = inner_spans
        self.claimed = False
        #: Exceptions raised while it was served (with when), its ERROR status if it failed.
        self.exceptions: list[tuple[Exception, int]] = []
        self.error: Status | None = None
        self._made: trace.Span | None = None
        self._lock = threading.Lock()  # a callback's planner may ask from the writer thread
        self._tokens: tuple[Token[RequestSpan | None], Token[context.Context]] = (
            _request.set(self),
            context.attach(trace.set_span_in_context(SpanOnDemand(self), caller)),
        )

    @property
    def recording(self) -> bool:
        """Whether the span may be recorded: until made, not known (the sampler decides then)."""
        return self._made is None or self._made.is_recording()

    def made(self) -> trace.Span:
        """The SDK's span for the request, made now if not yet."""
        with self._lock:
            if self._made is None:
                self._made = self.tracer.start_span(
                    self.name, self.caller, trace.SpanKind.SERVER, start_time=self.begun
                )
            return self._made

    def record(self, exc: Exception) -> None:
        """Record an exception raised while the request was served."""
        self.exceptions.append((exc, time.time_ns()))

    def fail(self, exc: Exception) -> None:
        """Record an exception that escaped the request, whose span is then in error."""
        self.record(exc)
        self.error = Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")

    def end(self, name: str | None) -> None:
        """The request has ended: its context ends, and its span is made (with the next
        batch) or, if made while it was served, ended now, under `name` once routed.
        """
        request, attached = self._tokens
        context.detach(attached)
        _request.reset(request)
        if name:
            self.name = name
        ended = time.time_ns()
        with self._lock:
            span = self._made
            if span is None:
                _ENDED.add(self, ended)
                return
        if span.is_recording():
            span.update_name(self.name)
            span.set_attributes(self.attributes)
            self._outcome(span)
        span.end(ended)

    def make(self, ended: int) -> None:
        """Make the span of the ended request, with all it gathered."""
        span = self.tracer.start_span(
            self.name,
            self.caller,
            trace.SpanKind.SERVER,
            attributes=self.attributes,
            start_time=self.begun,
        )
        self._outcome(span)
        span.end(ended)

    def _outcome(self, span: trace.Span) -> None:
        """The exceptions and the status of the request, on its span."""
        for exc, at in self.exceptions:
            span.record_exception(exc, timestamp=at)
        if self.error is not None:
            span.set_status(self.error)


class SpanOnDemand(trace.Span):
    """What the context holds as the span of a request being served: the first use of it
    makes the request's span (`RequestSpan.made`), which the request ends.
    """

    def __init__(self, request: RequestSpan) -> None:
        self.request = request

    def get_span_context(self) -> trace.SpanContext:
        return self.request.made().get_span_context()

    def is_recording(self) -> bool:
        return self.request.made().is_recording()

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.request.made().set_attributes(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.request.made().set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.request.made().add_event(name, attributes, timestamp)

    def update_name(self, name: str) -> None:
        self.request.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self.request.made().set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, AttributeValue] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self.request.made().record_exception(exception, attributes, timestamp, escaped)

    def end(self, end_time: int | None = None) -> None:
        """Nothing: the request ends its span."""


#: How long an ended request's span waits for others to be made with it.
BATCH_S = 0.05


class _Ended:
    """The requests whose spans are to be made, and the event loop whose timer will make them.

    Any thread's event loop may end requests (an app served beside another): the list is
    swapped under a lock, and a loop that closed before its timer fired (as a test's does)
    leaves its requests to the next loop's timer.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[RequestSpan, int]] = []
        self.due: asyncio.AbstractEventLoop | None = None
        self.lock = threading.Lock()

    def add(self, request: RequestSpan, ended: int) -> None:
        loop = asyncio.get_running_loop()
        with self.lock:
            self.requests.append((request, ended))
            if self.due is loop:
                return
            self.due = loop
        loop.call_later(BATCH_S, self.make)

    def make(self) -> None:
        with self.lock:
            ended, self.requests, self.due = self.requests, [], None
        for request, at in ended:
            request.make(at)


_ENDED = _Ended()


def make_ended_spans() -> None:
    """Make now the spans of every request that has ended (the app does when it stops)."""
    _ENDED.make()


#: The request being served, if any (see `RequestSpan`).
_request: ContextVar[RequestSpan | None] = ContextVar("jobpulse_request_span", default=None)


def serving() -> RequestSpan | None:
    """The request being served, if any."""
    return _request.get()


def note(attributes: Mapping[str, AttributeValue]) -> None:
    """Attributes of the request being served (of the current span outside a request)."""
    request = _request.get()
    if request is None:
        trace.get_current_span().set_attributes(attributes)
    elif request.recording:
        request.attributes.update(attributes)
