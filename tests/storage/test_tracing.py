"""Spans read from an in-memory exporter: one span a request (its service call's parameters
on it; inner spans when asked), trace_method, webhook trace continuation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobpulse import Actor, JobManager, Settings
from jobpulse.api.app import create_app
from jobpulse.request_spans import BATCH_S, RequestSpan
from jobpulse.storage.sql_store import open_store
from jobpulse.telemetry import trace_method, tracer
from jobpulse.webhooks.delivery import Deliverer, new_client
from tests.conftest import MakeKey, Spans
from tests.receiver import Receiver

PATCHED = "PATCH /v1/jobs/{job_id}"


def named(spans: InMemorySpanExporter | Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    finished = spans.get_finished_spans() if isinstance(spans, InMemorySpanExporter) else spans
    return [span for span in finished if span.name == name]


def patched(job_id: str) -> dict[str, object]:
    """The attributes of alice's request span for PATCH /v1/jobs/{job_id}, answered 200."""
    return {
        "http.method": "PATCH",
        "http.route": "/v1/jobs/{job_id}",
        "http.status_code": 200,
        "user.id": "alice",
        "organization.id": "org-a",
        "job.id": job_id,
    }


def of_requests(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    """The spans of requests and of the service calls (the sweeper's runs beside them left out)."""
    return [
        span
        for span in spans.get_finished_spans()
        if span.kind == SpanKind.SERVER or span.name.startswith("JobManager.")
    ]


async def test_a_request_is_one_span_carrying_its_service_call(
    spans: InMemorySpanExporter, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=me)).json()
    spans.clear()
    await http.patch(f"/v1/jobs/{job['id']}", json={"status": "completed"}, headers=me)
    [span] = of_requests(spans)  # no span of the JobManager's under it
    assert span.name == "PATCH /v1/jobs/{job_id}"
    # the caller and the job are the span's user.id, organization.id and job.id
    assert dict(span.attributes or {}) == patched(job["id"]) | {
        "code.function.name": "JobManager.update_job",
        "parameter.status": "completed",
    }


async def test_the_request_span_names_the_method_the_route_called(
    spans: InMemorySpanExporter, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={}, headers=me)).json()
    spans.clear()
    cancel = await http.post(f"/v1/jobs/{job['id']}/cancel", json={"reason": "no"}, headers=me)
    assert cancel.status_code == 200
    [span] = of_requests(spans)
    attributes = dict(span.attributes or {})
    # cancel_job calls update_job: the span keeps what the route asked for
    assert attributes["code.function.name"] == "JobManager.cancel_job"
    assert attributes["parameter.reason"] == "no"
    assert "parameter.status" not in attributes


async def test_a_refused_call_is_an_exception_on_the_request_span(
    spans: InMemorySpanExporter, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=me)).json()
    spans.clear()
    refused = await http.patch(f"/v1/jobs/{job['id']}", json={"status": "pending"}, headers=me)
    assert refused.status_code == 409
    [span] = of_requests(spans)
    assert (span.attributes or {})["http.status_code"] == 409
    [event] = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "jobpulse.errors.InvalidTransitionError"
    assert span.status.status_code == StatusCode.UNSET  # a 4xx is the caller's error


async def test_a_sampled_out_request_records_nothing(
    spans: InMemorySpanExporter, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    unsampled = {**me, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
    spans.clear()
    created = await http.post("/v1/jobs", json={}, headers=unsampled)
    assert created.status_code == 201
    assert of_requests(spans) == []


@contextlib.asynccontextmanager
async def served(
    database_url: str, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A client of an app with these settings, and alice's headers."""
    application = create_app(Settings(database_url=database_url, **settings))
    async with application.router.lifespan_context(application):
        keys = application.state.keys
        _key, secret = await keys.create(organization_id="org-a", user_id="alice")
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as http:
            yield http, {"Authorization": f"Bearer {secret}"}


async def test_inner_spans_when_the_setting_asks(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    async with served(database_url, trace_inner_spans=True) as (http, me):
        job = (await http.post("/v1/jobs", json={"status": "running"}, headers=me)).json()
        await http.patch(f"/v1/jobs/{job['id']}", json={"status": "completed"}, headers=me)
    [span] = named(spans, "PATCH /v1/jobs/{job_id}")
    assert dict(span.attributes or {}) == patched(job["id"])  # the parameters are below
    [service] = named(spans, "JobManager.update_job")
    assert service.parent is not None
    assert service.parent.span_id == span.context.span_id
    assert (service.attributes or {})["parameter.status"] == "completed"
    assert (service.attributes or {})["parameter.job_id"] == job["id"]


async def test_a_request_continues_the_callers_trace(
    spans: InMemorySpanExporter, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {**me, "traceparent": f"00-{trace_id}-{parent_id}-01"}
    assert (await http.post("/v1/jobs", json={}, headers=headers)).status_code == 201
    await http.post("/v1/jobs", json={}, headers=me)
    first, second = named(spans, "POST /v1/jobs")
    assert f"{first.context.trace_id:032x}" == trace_id
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == parent_id
    assert second.parent is None  # no traceparent: a trace of its own
    assert second.context.trace_id != first.context.trace_id


async def test_a_request_span_is_made_soon_after_the_request_ends(
    spans: Spans, http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    me = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=me)).json()
    spans.clear()
    begun = time.time_ns()
    await http.patch(f"/v1/jobs/{job['id']}", json={"status": "completed"}, headers=me)
    answered = time.time_ns()
    deadline = time.monotonic() + 5
    # Read without making the ended spans first: the app makes them on its own, in a batch.
    while not (made := named(InMemorySpanExporter.get_finished_spans(spans), PATCHED)):
        assert time.monotonic() < deadline, "the request's span was never made"
        await asyncio.sleep(BATCH_S / 5)
    [span] = made
    assert span.start_time is not None
    assert span.end_time is not None
    assert begun <= span.start_time < span.end_time <= answered  # the request's, not the batch's
    assert (span.attributes or {})["parameter.status"] == "completed"


def test_spans_left_by_a_loop_that_closed_are_made_by_the_next(spans: Spans) -> None:
    def served(name: str) -> None:
        RequestSpan(name, Context(), tracer(), inner_spans=False).end(None)

    async def briefly(name: str) -> None:
        served(name)  # its loop closes before the batch's timer fires

    async def longer(name: str) -> None:
        served(name)
        await asyncio.sleep(BATCH_S * 4)

    asyncio.run(briefly("GET /first"))
    assert named(InMemorySpanExporter.get_finished_spans(spans), "GET /first") == []
    asyncio.run(longer("GET /second"))
    made = InMemorySpanExporter.get_finished_spans(spans)
    assert [len(named(made, name)) for name in ("GET /first", "GET /second")] == [1, 1]


async def test_the_callback_of_a_request_continues_its_span(
    spans: Spans, database_url: str
) -> None:
    receiver = Receiver()
    try:
        async with served(database_url, webhook_allow_private=True) as (http, me):
            body = {"status": "running", "callback_url": receiver.url}
            job = (await http.post("/v1/jobs", json=body, headers=me)).json()
            done = {"status": "completed"}
            assert (await http.patch(f"/v1/jobs/{job['id']}", json=done, headers=me)).is_success
        deadline = time.monotonic() + 10
        while not receiver.received:
            assert time.monotonic() < deadline, "the callback never came"
            await asyncio.sleep(0.02)
        # The span was made when the callback asked for its ids, and ended with the request.
        [request] = named(spans, "PATCH /v1/jobs/{job_id}")
        _version, trace_id, parent_id, _flags = (
            receiver.received[0].headers["traceparent"].split("-")
        )
        assert trace_id == f"{request.context.trace_id:032x}"
        [delivery] = named(spans, "webhook job.completed")  # what sent it, under the request
        assert delivery.parent is not None
        assert delivery.parent.span_id == request.context.span_id
        assert int(parent_id, 16) == delivery.context.span_id
        assert (request.attributes or {})["parameter.status"] == "completed"
    finally:
        receiver.close()


class Vault:
    @trace_method
    async def store(self, blob: str, api_key: str, items: list[int]) -> int:
        return len(blob)

    @trace_method
    async def many(self, a: str, b: str, c: str, d: str, e: str, f: str, g: str, h: str) -> None:
        pass

    @trace_method
    async def fail(self, token: str) -> None:
        raise ValueError("no such thing")


async def test_trace_method_cuts_and_redacts(spans: InMemorySpanExporter) -> None:
    vault = Vault()
    assert (
        await vault.store("x" * 1_000_000, api_key="jp_secret", items=list(range(1000)))
        == 1_000_000
    )
    [span] = named(spans, "Vault.store")
    attributes = dict(span.attributes or {})
    assert attributes["parameter.api_key"] == "[REDACTED]"
    assert str(attributes["parameter.blob"]).endswith("(1000000 characters)")
    assert len(str(attributes["parameter.blob"])) < 2100
    assert attributes["parameter.items"] == "list of 1000 items"
    assert "jp_secret" not in str(attributes)
    with pytest.raises(ValueError, match="no such thing"):
        await vault.fail(token="t0ken")
    [failed] = named(spans, "Vault.fail")
    assert failed.status.status_code == StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert dict(failed.attributes or {})["parameter.token"] == "[REDACTED]"


async def test_trace_method_keeps_a_span_within_its_budget(
    spans: InMemorySpanExporter,
) -> None:
    await Vault().many(*(letter * 3000 for letter in "abcdefgh"))
    [span] = named(spans, "Vault.many")
    attributes = dict(span.attributes or {})
    recorded = [name for name in attributes if name != "parameter._truncated"]
    assert recorded == [f"parameter.{letter}" for letter in "abcdefg"]  # 7 x ~2 KiB fit
    assert attributes["parameter._truncated"] is True
    assert sum(len(str(value)) for value in attributes.values()) <= 16 * 1024 + 4


async def test_the_webhook_continues_the_trace_that_ended_the_job(
    spans: InMemorySpanExporter, database_url: str
) -> None:
    receiver = Receiver()
    settings = Settings(database_url=database_url, webhook_allow_private=True)
    store = open_store(settings)
    jobs = JobManager(store, allow_private_callbacks=True)
    alice = Actor("org-a", "alice")
    try:
        job = await jobs.create_job(alice, status="running", callback_url=receiver.url)
        with tracer().start_as_current_span("request") as request:
            await jobs.update_job(alice, job.id, status="completed")
        async with new_client(settings) as http:
            deliverer = Deliverer(store, settings, http)
            deadline = time.monotonic() + 10
            while not receiver.received:
                assert time.monotonic() < deadline
                await deliverer.run_once()
                await asyncio.sleep(0.02)
        traceparent = receiver.received[0].headers["traceparent"]
        assert traceparent.split("-")[1] == f"{request.get_span_context().trace_id:032x}"
        [delivery] = named(spans, "webhook job.completed")
        assert delivery.context.trace_id == request.get_span_context().trace_id
    finally:
        receiver.close()
        await store.close()


def test_json_logs_carry_the_trace(spans: InMemorySpanExporter) -> None:
    import json
    import logging

    from jobpulse.logs import JsonFormatter

    record = logging.LogRecord(
        "jobpulse.test", logging.INFO, __file__, 1, "hello %s", ("you",), None
    )
    plain = json.loads(JsonFormatter().format(record))
    assert (plain["level"], plain["message"], plain["logger"]) == (
        "info",
        "hello you",
        "jobpulse.test",
    )
    assert "trace_id" not in plain
    with tracer().start_as_current_span("work") as span:
        inside = json.loads(JsonFormatter().format(record))
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
