"""One line to install: `jobpulse.llm.instrument(client)` on an OpenAI or Anthropic client, or
`run.observe(answer)` on one answer of a client left as it is.
"""

from __future__ import annotations

import importlib
import time
from typing import Any, TypeVar

from jobpulse.llm.ledger import CURRENT, Call, Ledger
from jobpulse.llm.observation import Reader, attach, observed_post

C = TypeVar("C")
A = TypeVar("A")
#: The providers read, by the top-level package of the SDK's classes.
PROVIDERS = ("openai", "anthropic")
#: Marks a resource whose `_post` is observed already.
MARK = "_jobpulse_observed"


def _provider(thing: object) -> Any:
    """The reader module of the SDK `thing` (a client, an answer) comes from."""
    package = type(thing).__module__.partition(".")[0]
    if package not in PROVIDERS:
        raise TypeError(f"{type(thing).__qualname__} is not of the openai or anthropic package")
    return importlib.import_module(f"jobpulse.llm.{package}")


def instrument(client: C) -> C:
    """Report the LLM calls `client` makes inside a tracked run, and return it.

    `client` is an `openai.OpenAI`, `openai.AsyncOpenAI`, `anthropic.Anthropic` or
    `anthropic.AsyncAnthropic` (or a subclass, as Azure's). Inside `with jp.track(...)`
    (or `async with`), each chat completion or message it creates, streamed or not, records
    its usage on the run's job, the run's first content token is its time to first token, and
    the last call's finish reason becomes the run's stop reason. Outside a run the client
    behaves as if it had not been instrumented. A client made from it later
    (`client.with_options(...)`) is a new client, to be instrumented too.
    """
    provider = _provider(client)
    reader: Reader = provider.READER
    for resource in provider.resources(client):
        if getattr(resource, MARK, False):
            continue
        resource._post = observed_post(reader, resource._post)
        setattr(resource, MARK, True)
    return client


def observe(answer: A, ledger: Ledger | None = None) -> A:
    """Read `answer` (a stream or a whole answer of an OpenAI or Anthropic client, or a
    stream helper of either) into the run of `ledger` (default: the current run) and return
    it, the same object. The call is timed from now.
    """
    ledger = ledger if ledger is not None else CURRENT.get()
    if ledger is None:
        return answer
    reader: Reader = _provider(answer).READER
    stream = getattr(answer, "_raw_stream", answer)  # the helpers wrap the SDK's stream
    call = Call(reader.name, None, ledger, started_ns=time.perf_counter_ns())
    attach(reader, stream, call, reader.see_item)
    return answer
