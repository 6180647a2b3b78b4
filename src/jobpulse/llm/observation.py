"""Watching an LLM call without changing what its caller receives.

A provider's SDK sends a call through its resource's `_post`; an instrumented client's is
wrapped (`observed_post`), so that a call made inside a tracked run is timed and its answer
read. A streamed answer stays the very object the SDK returned: only the iterator inside it
is wrapped (`watch`), which passes every item on as it comes (the one exception: OpenAI's
usage chunk, when jobpulse asked for it and the caller did not) and tells the call what it
saw. An exception raised by the SDK passes through untouched; a failure of jobpulse's own
reading is logged and the reading stops, the stream going on.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from jobpulse.llm.ledger import CURRENT, Call, Ledger

logger = logging.getLogger("jobpulse.llm")
T = TypeVar("T")
#: Reads one streamed item into the call; False withholds the item from the caller.
See = Callable[[Call, Any], bool]
#: Marks a stream that is read already (by an instrumented client, say).
READ = "_jobpulse_read"


@dataclass(frozen=True)
class Reader:
    """How to read one provider's calls."""

    #: The provider's name in usage records: `openai`, `anthropic`.
    name: str
    #: The paths of the calls read (others pass through unobserved).
    paths: frozenset[str]
    #: The SDK's stream classes, sync and async.
    streams: tuple[type, ...]
    async_streams: tuple[type, ...]
    #: Reads one streamed item (a chunk, an event).
    see_item: See
    #: Reads a whole answer (a call that did not stream).
    see_answer: Callable[[Call, Any], None]
    #: The model a request asks for, the request as it is sent, and how to read its stream.
    prepare: Callable[[dict[str, Any]], tuple[str | None, dict[str, Any], See]]


def _broken(call: Call) -> None:
    logger.exception("reading an LLM call of provider %s failed; it goes on unread", call.provider)


def watch(items: Iterator[T], call: Call, see: See) -> Iterator[T]:
    """Yield what `items` yields (but what `see` withholds), telling `call` of each item."""
    reading: See | None = see
    try:
        for item in items:
            reading, keep = _read(reading, call, item)
            if keep:
                yield item
    except Exception as error:
        call.end(error)
        raise
    finally:
        call.end()


def _read(reading: See | None, call: Call, item: Any) -> tuple[See | None, bool]:
    """Whether to pass `item` on, and the reader of the next one (None once it broke: a
    jobpulse failure never breaks the caller's stream).
    """
    if reading is None:
        return None, True
    try:
        return reading, reading(call, item)
    except Exception:
        _broken(call)
        return None, True


async def awatch(items: AsyncIterator[T], call: Call, see: See) -> AsyncIterator[T]:
    """`watch` for an async stream."""
    reading: See | None = see
    try:
        async for item in items:
            reading, keep = _read(reading, call, item)
            if keep:
                yield item
    except Exception as error:
        call.end(error)
        raise
    finally:
        call.end()


def attach(reader: Reader, answer: T, call: Call, see: See) -> T:
    """Read `answer` (a stream, as it is consumed, or a whole answer) into `call`; the same
    object comes back.
    """
    try:
        if isinstance(answer, reader.streams + reader.async_streams):
            if getattr(answer, READ, False):
                return answer  # read already: its call is counted once
            inner = answer._iterator  # type: ignore[attr-defined]
            sync = isinstance(answer, reader.streams)
            answer._iterator = (watch if sync else awatch)(inner, call, see)  # type: ignore[attr-defined]
            setattr(answer, READ, True)
            return answer
        reader.see_answer(call, answer)
    except Exception:
        _broken(call)
    call.end()
    return answer


def begin(
    reader: Reader, ledger: Ledger, kwargs: dict[str, Any]
) -> tuple[Call, dict[str, Any], See]:
    """A call about to be sent: its record, the request as sent, how to read its stream."""
    try:
        model, sent, see = reader.prepare(kwargs)
    except Exception:
        logger.exception("could not read an LLM request of provider %s", reader.name)
        model, sent, see = None, kwargs, reader.see_item
    return Call(reader.name, model, ledger), sent, see


def observed_post(reader: Reader, post: Callable[..., Any]) -> Callable[..., Any]:
    """`post` (a resource's `_post`, sync or async), observing the calls of a tracked run."""
    if inspect.iscoroutinefunction(post):
        return _observed_async_post(reader, post)

    @functools.wraps(post)
    def observed(path: str, *args: Any, **kwargs: Any) -> Any:
        ledger = CURRENT.get()
        if ledger is None or path not in reader.paths:
            return post(path, *args, **kwargs)
        call, sent, see = begin(reader, ledger, kwargs)
        try:
            answer = post(path, *args, **sent)
        except Exception as error:
            call.end(error)
            raise
        return attach(reader, answer, call, see)

    return observed


def _observed_async_post(
    reader: Reader, post: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(post)
    async def observed(path: str, *args: Any, **kwargs: Any) -> Any:
        ledger = CURRENT.get()
        if ledger is None or path not in reader.paths:
            return await post(path, *args, **kwargs)
        call, sent, see = begin(reader, ledger, kwargs)
        try:
            answer = await post(path, *args, **sent)
        except Exception as error:
            call.end(error)
            raise
        return attach(reader, answer, call, see)

    return observed
