"""How the dashboard's usage panels write numbers and draw count axes, and how a page's live
stream carries news of LLM calls beside its events (no database: a stand-in source of
events and a watch that says when calls were recorded).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from jobpulse.dashboard.charts import counts_axis
from jobpulse.dashboard.live import USAGE_NEWS, with_usage_news
from jobpulse.dashboard.numbers import count, per_second, tokens, usd
from jobpulse.views.rules import check_view


@pytest.mark.parametrize(
    ("dollars", "written"),
    [
        (None, "unknown"),
        (0.0, "$0.00"),
        (0.0000004, "< $0.000001"),
        (0.000736, "$0.000736"),
        (0.01425, "$0.01425"),
        (0.02, "$0.02"),
        (0.5, "$0.50"),
        (0.035986, "$0.035986"),
        (1.0, "$1.00"),
        (1234.567, "$1,234.57"),
    ],
)
def test_dollars_are_written_to_the_millionth_below_a_dollar_and_unknown_is_said(
    dollars: float | None, written: str
) -> None:
    assert usd(dollars) == written


def test_token_counts_add_every_kind_and_read_with_separators() -> None:
    usage = {"input_tokens": 3000, "output_tokens": 710, "cache_read_tokens": 18000}
    assert tokens(usage | {"cache_write_tokens": 2000, "calls": 3}) == 23710
    assert tokens(None) == 0
    assert count(23710) == "23,710"
    assert count(None) == "—"
    assert per_second(100.0) == "100.0"
    assert per_second(None) == "—"


@pytest.mark.parametrize("highest", [0, 1, 3, 5, 6, 7, 11, 99, 100, 101, 4862, 24310, 10**6])
def test_count_axes_have_whole_round_steps_that_reach_the_highest(highest: int) -> None:
    ticks = counts_axis(highest)
    step = ticks[1] - ticks[0]
    assert ticks[0] == 0
    assert ticks[-1] >= highest
    assert ticks[-2] < max(highest, 1)  # no tick past the one that reaches it
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    assert str(step).strip("0") in ("1", "2", "5")  # 1, 2 or 5 times a power of ten
    assert len(ticks) <= 7


def test_a_saved_view_keeps_the_model_filter() -> None:
    assert check_view("mini", "model=gpt-4.1-mini&status=running") == (
        "mini",
        "model=gpt-4.1-mini&status=running",
    )


class Watch:
    """Says there are new calls on the checks listed in `news` (counted from 1)."""

    def __init__(self, news: set[int]) -> None:
        self.news = news
        self.checks = 0

    async def changed(self) -> bool:
        self.checks += 1
        return self.checks in self.news


async def test_usage_news_comes_between_the_events_and_ends_with_them() -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    closed = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            closed.set()

    watch = Watch({2})
    stream = with_usage_news(events(), watch, every_s=0.01)
    await queue.put(b"first")
    assert await anext(stream) == b"first"
    assert await anext(stream) is USAGE_NEWS  # the second check saw a call
    assert watch.checks == 2
    await queue.put(b"second")
    assert await anext(stream) == b"second"
    await queue.put(None)  # the events end (revoked, say): so does the stream
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert closed.is_set()


async def test_closing_the_stream_closes_its_events() -> None:
    closed = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        try:
            await asyncio.Event().wait()  # nothing ever happens
            yield b"never"
        finally:
            closed.set()

    stream = with_usage_news(events(), Watch({1}), every_s=0.01)
    assert await anext(stream) is USAGE_NEWS
    await stream.aclose()
    assert closed.is_set()
