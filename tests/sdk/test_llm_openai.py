"""The official `openai` client, instrumented with `jobpulse.llm.instrument`, inside runs
tracked on the real app on loopback, talking to a fake of OpenAI's HTTP and SSE protocol:
what the run's job shows (usage, cost from the price table, time to first token, stop
reason), and that the caller's code receives exactly what it would without jobpulse, also
when jobpulse is down.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from jobpulse import llm
from jobpulse.client import AsyncJobPulse, JobPulse
from jobpulse.public import JobPublic
from tests.llm_fakes import (
    OPENAI_KEY,
    FakeLLM,
    Refusal,
    Reply,
    assert_first_calls_ttft,
    stats_usage,
    sums_of,
)
from tests.served import Faults, Served

pytestmark = pytest.mark.usefixtures("quick_retries")

MODEL = "gpt-4o-mini"
#: Its price in the shipped table, USD per million tokens: input, output, cache read.
PRICE = (0.15, 0.60, 0.075)
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
#: Three calls: the first waits 0.2 s before its first content (its role chunk comes at once),
#: the second 1 s (were it the run's first token, the run's TTFT would be over 1.2 s).
THREE = (
    Reply(MODEL, ["Hel", "lo"], "tool_calls", 11, 5, 3, 0, first_delay_s=0.2),
    Reply(MODEL, ["a", "b", "c"], "tool_calls", 20, 7, 0, 2, first_delay_s=1.0),
    Reply(MODEL, ["done"], "stop", 31, 2, 16, 0),
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
def gpt(fake: FakeLLM) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{fake.url}/v1", api_key=OPENAI_KEY, max_retries=2) as made:
        yield llm.instrument(made)


@pytest.fixture
async def agpt(fake: FakeLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{fake.url}/v1", api_key=OPENAI_KEY) as made:
        yield llm.instrument(made)


def cost(replies: tuple[Reply, ...]) -> float:
    """What the replies cost at the table's price (cache writes at the input price)."""
    return sum(
        ((r.input_tokens + r.cache_write_tokens) * PRICE[0] + r.output_tokens * PRICE[1]) / 1e6
        + r.cache_read_tokens * PRICE[2] / 1e6
        for r in replies
    )


def assert_usage(job: JobPublic, replies: tuple[Reply, ...]) -> None:
    """The job's usage is the exact sum of what the fake reported, priced from the table."""
    assert job.usage is not None
    sums = sums_of(replies)
    shown = job.usage.model_dump()
    assert {name: shown[name] for name in sums} == sums
    assert job.usage.cost_usd == pytest.approx(cost(replies), rel=1e-6)
    [(name, by_model)] = job.usage.by_model.items()
    assert name == f"openai/{MODEL}"
    assert by_model.calls == len(replies)


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks)


def test_a_run_of_three_streamed_calls_shows_their_usage_ttft_and_stop_reason(
    served: Served,
    secret: str,
    client: JobPulse,
    reader: JobPulse,
    gpt: openai.OpenAI,
    fake: FakeLLM,
) -> None:
    fake.script("openai", *THREE)
    texts, kinds, first_done = [], set(), 0.0
    with client.track(job_type="agent") as run:
        started = time.monotonic()
        for _ in THREE:
            stream = gpt.chat.completions.create(model=MODEL, messages=HI, stream=True)
            kinds.add(type(stream))
            chunks = list(stream)
            first_done = first_done or time.monotonic()
            assert all(chunk.choices for chunk in chunks)  # the usage chunk was not asked for
            texts.append(text_of(chunks))
    assert texts == ["Hello", "abc", "done"]
    assert kinds == {openai.Stream}
    # jobpulse asked for the usage chunk
    assert [s.body["stream_options"] for s in fake.seen] == [{"include_usage": True}] * 3
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")
    assert job.metadata == {"llm_finish_reason": "stop"}
    assert_usage(job, THREE)
    # /v1/stats shows the same sums, by model and by job type
    figures = stats_usage(served.url, secret)
    assert {name: figures[name] for name in sums_of(THREE)} == sums_of(THREE)
    assert figures["cost_usd"] == pytest.approx(cost(THREE), rel=1e-6)
    assert figures["by_model"][f"openai/{MODEL}"]["calls"] == len(THREE)
    assert figures["by_job_type"]["agent"]["calls"] == len(THREE)
    assert_first_calls_ttft(job.ttft_ns, started, first_done)
    records = reader.list_usage(job.id)
    assert [r["output_tokens"] for r in records] == [5, 7, 2]
    assert records[0]["ttft_ns"] >= 200_000_000
    assert records[1]["ttft_ns"] >= 1_000_000_000
    assert all(r["duration_ns"] >= r["ttft_ns"] for r in records)


async def test_an_async_run_of_three_streamed_calls(
    served: Served, secret: str, agpt: openai.AsyncOpenAI, fake: FakeLLM, reader: JobPulse
) -> None:
    fake.script("openai", *THREE)
    texts, first_done = [], 0.0
    async with AsyncJobPulse(served.url, secret) as jp, jp.track(job_type="agent") as run:
        started = time.monotonic()
        for _ in THREE:
            stream = await agpt.chat.completions.create(model=MODEL, messages=HI, stream=True)
            assert isinstance(stream, openai.AsyncStream)
            texts.append(text_of([chunk async for chunk in stream]))
            first_done = first_done or time.monotonic()
    assert texts == ["Hello", "abc", "done"]
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")
    assert_usage(job, THREE)
    assert_first_calls_ttft(job.ttft_ns, started, first_done)


def test_a_call_that_does_not_stream_and_stops_at_its_length(
    client: JobPulse, reader: JobPulse, gpt: openai.OpenAI, fake: FakeLLM
) -> None:
    reply = Reply(MODEL, ["cut sh"], "length", 40, 64)
    fake.script("openai", reply)
    with client.track(job_type="agent") as run:
        answer = gpt.chat.completions.create(model=MODEL, messages=HI, max_tokens=64)
    assert answer.choices[0].message.content == "cut sh"
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("failed", "max_tokens_exceeded")
    assert job.metadata == {"llm_finish_reason": "length"}
    assert_usage(job, (reply,))
    assert job.ttft_ns is not None
    assert "stream_options" not in fake.seen[0].body


def test_a_429_is_retried_by_the_sdk_and_the_call_counted_once(
    client: JobPulse, reader: JobPulse, gpt: openai.OpenAI, fake: FakeLLM
) -> None:
    reply = Reply(MODEL, ["ok"], "stop", 9, 1)
    busy = Refusal(429, "rate_limit_exceeded", "Rate limit reached", {"retry-after-ms": "20"})
    fake.script("openai", busy, reply)
    with client.track(job_type="agent") as run:
        chunks = list(gpt.chat.completions.create(model=MODEL, messages=HI, stream=True))
    assert text_of(chunks) == "ok"
    assert len(fake.seen) == 2
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("completed", "end_turn")
    assert_usage(job, (reply,))


def test_an_error_in_the_stream_reaches_the_caller_and_ends_the_run_as_an_llm_api_error(
    client: JobPulse, reader: JobPulse, gpt: openai.OpenAI, fake: FakeLLM
) -> None:
    fake.script("openai", Reply(MODEL, ["a", "b"], fail_after=1))
    seen: list[Any] = []
    with (
        pytest.raises(openai.APIError, match="The server had an error"),
        client.track(job_type="agent") as run,
    ):
        seen.extend(gpt.chat.completions.create(model=MODEL, messages=HI, stream=True))
    assert text_of(seen) == "a"
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("failed", "llm_api_error")
    assert job.metadata["error_type"] == "APIError"
    assert job.usage is None  # the provider sends no count for a stream it broke off
    assert job.ttft_ns is not None


def test_an_account_out_of_credit_ends_the_run_as_insufficient_credits(
    client: JobPulse, reader: JobPulse, gpt: openai.OpenAI, fake: FakeLLM
) -> None:
    fake.script("openai", Refusal(429, "insufficient_quota", "You exceeded your current quota"))
    once = llm.instrument(gpt.with_options(max_retries=0))  # a new client: instrumented too
    with (
        pytest.raises(openai.RateLimitError),
        client.track(job_type="agent") as run,
    ):
        once.chat.completions.create(model=MODEL, messages=HI)
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason) == ("failed", "insufficient_credits")


def test_jobpulse_down_changes_nothing_for_the_caller(
    client: JobPulse, gpt: openai.OpenAI, fake: FakeLLM, faults: Faults
) -> None:
    fake.script("openai", *THREE[:1], THREE[2])
    with client.track(job_type="agent") as run:
        faults.down = True
        streamed = list(gpt.chat.completions.create(model=MODEL, messages=HI, stream=True))
        whole = gpt.chat.completions.create(model=MODEL, messages=HI)
    assert text_of(streamed) == "Hello"
    assert all(chunk.choices for chunk in streamed)
    assert whole.choices[0].message.content == "done"
    assert run.job is not None
    assert ("POST", f"/v1/jobs/{run.job.id}/usage") in faults.failed


def test_a_usage_report_jobpulse_refuses_is_logged_and_the_run_goes_on(
    client: JobPulse,
    reader: JobPulse,
    gpt: openai.OpenAI,
    fake: FakeLLM,
    faults: Faults,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.script("openai", THREE[2])
    faults.unavailable.add(("POST", "/usage"))
    with client.track(job_type="agent") as run:
        chunks = list(gpt.chat.completions.create(model=MODEL, messages=HI, stream=True))
    assert text_of(chunks) == "done"
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.status, job.stop_reason, job.usage) == ("completed", "end_turn", None)
    assert "a report of an LLM call" in caplog.text


def test_outside_a_run_the_client_is_left_as_it_is(gpt: openai.OpenAI, fake: FakeLLM) -> None:
    fake.script("openai", THREE[2])
    chunks = list(gpt.chat.completions.create(model=MODEL, messages=HI, stream=True))
    assert text_of(chunks) == "done"
    assert "stream_options" not in fake.seen[0].body


def test_a_caller_that_asks_for_the_usage_chunk_gets_it(
    client: JobPulse, reader: JobPulse, gpt: openai.OpenAI, fake: FakeLLM
) -> None:
    fake.script("openai", THREE[2])
    with client.track(job_type="agent") as run:
        stream = gpt.chat.completions.create(
            model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2
    assert run.job is not None
    assert_usage(reader.get_job(run.job.id), (THREE[2],))


def test_run_observe_reads_a_stream_of_a_client_left_alone(
    client: JobPulse, reader: JobPulse, fake: FakeLLM
) -> None:
    fake.script("openai", THREE[0])
    plain = openai.OpenAI(base_url=f"{fake.url}/v1", api_key=OPENAI_KEY)
    began = time.monotonic()
    with client.track(job_type="agent") as run:
        stream = plain.chat.completions.create(
            model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}
        )
        assert run.observe(stream) is stream
        assert text_of([c for c in stream if c.choices]) == "Hello"
    assert time.monotonic() - began >= 0.2
    assert run.job is not None
    job = reader.get_job(run.job.id)
    assert (job.stop_reason, job.metadata) == (
        "requires_approval",
        {"llm_finish_reason": "tool_calls"},
    )
    assert_usage(job, (THREE[0],))
    assert job.ttft_ns is not None
    assert job.ttft_ns >= 200_000_000
    plain.close()


def test_calls_inside_a_job_of_someone_else_report_to_it(
    client: JobPulse, reader: JobPulse, gpt: openai.OpenAI, fake: FakeLLM
) -> None:
    """The job of an executor's task, say: created elsewhere, ended by its owner."""
    fake.script("openai", *THREE[:1], THREE[2])
    job = client.create_job(job_type="task", status="running")
    with llm.reporting_to(client, job.id) as ledger:
        list(gpt.chat.completions.create(model=MODEL, messages=HI, stream=True))
        gpt.chat.completions.create(model=MODEL, messages=HI)
    seen = reader.get_job(job.id)
    assert seen.status == "running"  # ending it is its owner's
    assert_usage(seen, (THREE[0], THREE[2]))
    assert seen.ttft_ns is not None
    assert seen.ttft_ns >= 200_000_000
    assert ledger.final_change(None, {"status": "completed"}) == {
        "stop_reason": "end_turn",
        "metadata": {"llm_finish_reason": "stop"},
    }
