"""The official `anthropic` client, instrumented with `jobpulse.llm.instrument`, inside runs
tracked on the real app on loopback, talking to a fake of Anthropic's messages HTTP and SSE
protocol: usage, cost from the price table, time to first token and the mapped stop reason on
the run's job; the caller's code receiving exactly what it would without jobpulse.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam

from jobpulse import llm
from jobpulse.client import AsyncJobPulse, JobPulse
from jobpulse.public import JobPublic
from tests.llm_fakes import (
    ANTHROPIC_KEY,
    FakeLLM,
    Refusal,
    Reply,
    assert_first_calls_ttft,
    stats_usage,
    sums_of,
)
from tests.served import Faults, Served

pytestmark = pytest.mark.usefixtures("quick_retries")

MODEL = "claude-haiku-4-5"
#: Its price in the shipped table, USD per million tokens: input, output, cache read, write.
PRICE = (1.0, 5.0, 0.10, 1.25)
HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
#: Three calls: the first waits 0.2 s between message_start (and an empty text block, a ping)
#: and its first text; the second 1 s.
THREE = (
    Reply(MODEL, ["Hel", "lo"], "tool_use", 12, 6, 100, 0, first_delay_s=0.2),
    Reply(MODEL, ["a", "b", "c"], "tool_use", 25, 8, 0, 40, first_delay_s=1.0),
    Reply(MODEL, ["done"], "end_turn", 33, 3, 140, 0),
)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    served = FakeLLM()
    yield served
    served.close()


@pytest.fixture
def client(served: Served, secret: str, faults: Faults) -> Iterator[JobPulse]:
    """The tracked code's jobpulse client, whose requests `faults` may fail."""
    with JobPulse(served.url, secret, transport=faults) as tracking:
        yield tracking


@pytest.fixture
def reader(served: Served, secret: str) -> Iterator[JobPulse]:
    with JobPulse(served.url, secret) as reading:
        yield reading


@pytest.fixture
def claude(fake: FakeLLM) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key=ANTHROPIC_KEY) as made:
        yield llm.instrument(made)


@pytest.fixture
async def aclaude(fake: FakeLLM) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=fake.url, api_key=ANTHROPIC_KEY) as made:
        yield llm.instrument(made)


def cost(replies: tuple[Reply, ...]) -> float:
    """What the replies cost at the table's price."""
    return sum(
        (
            r.input_tokens * PRICE[0]
            + r.output_tokens * PRICE[1]
            + r.cache_read_tokens * PRICE[2]
            + r.cache_write_tokens * PRICE[3]
        )
        / 1e6
        for r in replies
    )


def assert_usage(job: JobPublic, replies: tuple[Reply, ...]) -> None:
    """The job's usage is the exact sum of what the fake reported, priced from the table."""
    assert job.usage is not None
    sums = sums_of(replies)
    shown = job.usage.model_dump()
    assert {name: shown[name] for name in sums} == sums
    assert job.usage.cost_usd == pytest.approx(cost(replies), rel=1e-6)
    assert list(job.usage.by_model) == [f"anthropic/{MODEL}"]


def text_of(events: list[Any]) -> str:
    return "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )


def test_a_run_of_three_streamed_calls_shows_their_usage_ttft_and_stop_reason(
    served: Served,
    secret: str,
    client: JobPulse,
    reader: JobPulse,
    claude: anthropic.Anthropic,
    fake: FakeLLM,
) -> None:
    fake.script("anthropic", *THREE)
    texts, types = [], []
    with client.track(job_type="agent") as run:
        started = time.monotonic()
        stream = claude.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        assert isinstance(stream, anthropic.Stream)
        events = list(stream)
        first_done = time.monotonic()
        types = [e.type for e in events]
        texts.append(text_of(events))
        with claude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as helper:
            texts.append(helper.get_final_text())
        texts.append(
            text_of(
                list(claude.messages.create(model=MODEL, max_tokens=8, messages=HI, stream=True))
            )
        )
    assert texts == ["Hello", "abc", "done"]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")
    assert job.metadata == {"llm_finish_reason": "end_turn"}
    assert_usage(job, THREE)
    # /v1/stats shows the same sums, by model and by job type
    figures = stats_usage(served.url, secret)
    assert {name: figures[name] for name in sums_of(THREE)} == sums_of(THREE)
    assert figures["cost_usd"] == pytest.approx(cost(THREE), rel=1e-6)
    assert figures["by_model"][f"anthropic/{MODEL}"]["calls"] == len(THREE)
    assert figures["by_job_type"]["agent"]["calls"] == len(THREE)
    assert_first_calls_ttft(job.ttft_ns, started, first_done)
    records = reader.list_usage(job.id)
    assert [r["cache_read_tokens"] for r in records] == [100, 0, 140]
    assert records[1]["ttft_ns"] >= 1_000_000_000


async def test_an_async_run_of_three_streamed_calls(
    served: Served,
    secret: str,
    aclaude: anthropic.AsyncAnthropic,
    fake: FakeLLM,
    reader: JobPulse,
) -> None:
    fake.script("anthropic", *THREE)
    texts = []
    async with AsyncJobPulse(served.url, secret) as jp, jp.track(job_type="agent") as run:
        started = time.monotonic()
        stream = await aclaude.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        texts.append(text_of([event async for event in stream]))
        first_done = time.monotonic()
        async with aclaude.messages.stream(model=MODEL, max_tokens=64, messages=HI) as helper:
            texts.append(await helper.get_final_text())
        stream = await aclaude.messages.create(model=MODEL, max_tokens=8, messages=HI, stream=True)
        texts.append(text_of([event async for event in stream]))
    assert texts == ["Hello", "abc", "done"]
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")
    assert_usage(job, THREE)
    assert_first_calls_ttft(job.ttft_ns, started, first_done)


@pytest.mark.parametrize(
    ("finish", "status", "stop_reason"),
    [
        ("max_tokens", "failed", "max_tokens_exceeded"),
        ("refusal", "failed", "invalid_llm_response"),
        ("pause_turn", "completed", "max_steps"),
        ("stop_sequence", "completed", "end_turn"),
    ],
)
def test_a_call_that_does_not_stream_maps_its_stop_reason(
    client: JobPulse,
    reader: JobPulse,
    claude: anthropic.Anthropic,
    fake: FakeLLM,
    finish: str,
    status: str,
    stop_reason: str,
) -> None:
    reply = Reply(MODEL, ["so"], finish, 21, 2, 0, 9)
    fake.script("anthropic", reply)
    with client.track(job_type="agent") as run:
        message = claude.messages.create(model=MODEL, max_tokens=2, messages=HI)
    assert message.stop_reason == finish
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == (status, stop_reason)
    assert job.metadata == {"llm_finish_reason": finish}
    assert_usage(job, (reply,))


def test_a_429_is_retried_by_the_sdk_and_the_call_counted_once(
    client: JobPulse, reader: JobPulse, claude: anthropic.Anthropic, fake: FakeLLM
) -> None:
    reply = Reply(MODEL, ["ok"], "end_turn", 9, 1)
    busy = Refusal(429, "rate_limit_error", "Number of requests exceeded", {"retry-after-ms": "20"})
    fake.script("anthropic", busy, reply)
    with client.track(job_type="agent") as run:
        events = list(claude.messages.create(model=MODEL, max_tokens=8, messages=HI, stream=True))
    assert text_of(events) == "ok"
    assert len(fake.seen) == 2
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")
    assert_usage(job, (reply,))


def test_an_error_event_reaches_the_caller_and_ends_the_run_as_an_llm_api_error(
    client: JobPulse, reader: JobPulse, claude: anthropic.Anthropic, fake: FakeLLM
) -> None:
    fake.script("anthropic", Reply(MODEL, ["a", "b"], "end_turn", 17, 5, fail_after=1))
    seen: list[Any] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        client.track(job_type="agent") as run,
    ):
        seen.extend(claude.messages.create(model=MODEL, max_tokens=8, messages=HI, stream=True))
    assert text_of(seen) == "a"
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("failed", "llm_api_error")
    # message_start told the input tokens (and the one output token so far): they are kept
    assert job.usage is not None
    assert (job.usage.input_tokens, job.usage.output_tokens) == (17, 1)


def test_a_billing_error_ends_the_run_as_insufficient_credits(
    client: JobPulse, reader: JobPulse, claude: anthropic.Anthropic, fake: FakeLLM
) -> None:
    fake.script("anthropic", Refusal(402, "billing_error", "Your credit balance is too low"))
    with pytest.raises(anthropic.APIStatusError), client.track(job_type="agent") as run:
        claude.messages.create(model=MODEL, max_tokens=8, messages=HI)
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("failed", "insufficient_credits")


def test_an_error_the_caller_handles_does_not_end_the_run(
    client: JobPulse, reader: JobPulse, claude: anthropic.Anthropic, fake: FakeLLM
) -> None:
    fake.script("anthropic", Refusal(400, "invalid_request_error", "bad"), THREE[2])
    with client.track(job_type="agent") as run:
        with pytest.raises(anthropic.BadRequestError):
            claude.messages.create(model=MODEL, max_tokens=8, messages=HI)
        claude.messages.create(model=MODEL, max_tokens=8, messages=HI)
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")


async def test_jobpulse_down_changes_nothing_for_the_async_caller(
    served: Served, secret: str, aclaude: anthropic.AsyncAnthropic, fake: FakeLLM
) -> None:
    faults = Faults()
    fake.script("anthropic", THREE[0], THREE[2])
    async with (
        AsyncJobPulse(served.url, secret, transport=faults) as jp,
        jp.track(job_type="agent") as run,
    ):
        faults.down = True
        stream = await aclaude.messages.create(model=MODEL, max_tokens=8, messages=HI, stream=True)
        events = [event async for event in stream]
        message = await aclaude.messages.create(model=MODEL, max_tokens=8, messages=HI)
    assert text_of(events) == "Hello"
    assert message.content[0].type == "text"
    assert message.content[0].text == "done"
    assert run.job is not None
    assert ("POST", f"/v1/jobs/{run.job.id}/usage") in faults.failed


def test_run_observe_reads_a_stream_helper_of_a_client_left_alone(
    client: JobPulse, reader: JobPulse, fake: FakeLLM
) -> None:
    fake.script("anthropic", THREE[2])
    with (
        anthropic.Anthropic(base_url=fake.url, api_key=ANTHROPIC_KEY) as plain,
        client.track(job_type="agent") as run,
        plain.messages.stream(model=MODEL, max_tokens=8, messages=HI) as helper,
    ):
        assert run.observe(helper) is helper
        assert helper.get_final_text() == "done"
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert job.stop_reason == "end_turn"
    assert_usage(job, (THREE[2],))
