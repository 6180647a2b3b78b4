"""What `jobpulse.llm.instrument` costs a stream, per chunk, against the bare stream, in the
same run.

The chunks are real: the official clients stream a long answer from the fake providers
(tests/llm_fakes.py) once, and the SDK's own objects are kept. Then, in alternating rounds,
the same chunks go through a generator as the SDK's stream yields them (bare) and through
jobpulse's reading of that generator (observed, as inside a tracked run); the overhead is the
difference of the best rounds per chunk. The same comparison end to end (the SDK reading SSE
from loopback, bare client against instrumented client inside a run) is informational: there
the parsing and the network dwarf the difference.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
from tests.llm_fakes import ANTHROPIC_KEY, OPENAI_KEY, FakeLLM, Reply

from jobpulse import llm
from jobpulse.llm import anthropic as anthropic_reader
from jobpulse.llm import openai as openai_reader
from jobpulse.llm.ledger import CURRENT, Call, Ledger
from jobpulse.llm.observation import See, watch

CHUNKS = 4000
ROUNDS = 31
END_TO_END_ROUNDS = 5
#: Chunks of each end-to-end stream (the SDK takes about a millisecond to parse one).
END_TO_END_CHUNKS = 500
HI: list[Any] = [{"role": "user", "content": "hi"}]


class Unreported:
    """A run with no job: its ledger reads everything and sends nothing."""

    id = None

    def learn(self, error: Exception) -> None:
        raise AssertionError(error)


class QuietLedger(Ledger):
    def send(self, kind: str, body: dict[str, Any] | None) -> None:
        return None


def _bare(items: list[Any]) -> Iterator[Any]:
    yield from items


def _watched(items: list[Any], call: Call, see: See) -> Iterator[Any]:
    return watch(_bare(items), call, see)


def _per_chunk(run: Callable[[], Iterator[Any]], count: int) -> float:
    began = time.perf_counter()
    for _ in run():
        pass
    return (time.perf_counter() - began) / count


def compare(items: list[Any], provider: str, see: See) -> dict[str, float]:
    """Seconds per chunk, bare and observed, the best of alternating rounds (on a shared
    machine the best is the round least disturbed by others; a median there measures them).
    """
    bare: list[float] = []
    observed: list[float] = []
    for _ in range(ROUNDS):
        bare.append(_per_chunk(lambda: _bare(items), len(items)))
        call = Call(provider, "m", QuietLedger(Unreported()))
        observed.append(_per_chunk(functools.partial(_watched, items, call, see), len(items)))
    return {"bare": min(bare), "observed": min(observed)}


def _chunks(fake: FakeLLM) -> dict[str, list[Any]]:
    pieces = [f"w{n} " for n in range(CHUNKS)]
    fake.script("openai", Reply("gpt-4o-mini", pieces, "stop", 10, CHUNKS))
    fake.script("anthropic", Reply("claude-haiku-4-5", pieces, "end_turn", 10, CHUNKS))
    with openai.OpenAI(base_url=f"{fake.url}/v1", api_key=OPENAI_KEY) as gpt:
        chunks = list(
            gpt.chat.completions.create(
                model="gpt-4o-mini",
                messages=HI,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    with anthropic.Anthropic(base_url=fake.url, api_key=ANTHROPIC_KEY) as claude:
        events = list(
            claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI, stream=True)
        )
    return {"openai": chunks, "anthropic": events}


def _end_to_end(fake: FakeLLM) -> dict[str, float]:
    """Median seconds per chunk of a streamed chat completion read through the SDK from
    loopback: a bare client, and an instrumented one inside a run.
    """
    pieces = [f"w{n} " for n in range(END_TO_END_CHUNKS)]
    fake.script("openai", Reply("gpt-4o-mini", pieces, "stop", 10, END_TO_END_CHUNKS))
    times: dict[str, list[float]] = {"bare": [], "observed": []}
    with (
        openai.OpenAI(base_url=f"{fake.url}/v1", api_key=OPENAI_KEY) as bare,
        openai.OpenAI(base_url=f"{fake.url}/v1", api_key=OPENAI_KEY) as observed,
    ):
        llm.instrument(observed)
        for _ in range(END_TO_END_ROUNDS):
            for name, client in (("bare", bare), ("observed", observed)):
                token = CURRENT.set(QuietLedger(Unreported()))
                try:
                    stream = client.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=HI,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    times[name].append(_per_chunk(stream.__iter__, END_TO_END_CHUNKS + 3))
                finally:
                    CURRENT.reset(token)
    return {name: statistics.median(taken) for name, taken in times.items()}


def measure() -> dict[str, dict[str, float]]:
    """Per provider, and end to end: seconds per chunk, bare and observed."""
    fake = FakeLLM()
    try:
        items = _chunks(fake)
        figures = {
            "openai": compare(items["openai"], "openai", openai_reader.see_chunk_withholding),
            "anthropic": compare(items["anthropic"], "anthropic", anthropic_reader.see_event),
        }
        figures["end to end"] = _end_to_end(fake)
    finally:
        fake.close()
    return figures
