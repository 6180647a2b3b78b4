"""The pace of a long read: slices of whole buckets that cover its window exactly, pauses
between them only while changes are being written, as long as the read's share asks, and
its deadline counting the pauses.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from jobpulse.errors import ReadTimeoutError
from jobpulse.storage.scans import Pacer

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class Clock:
    """A monotonic clock that moves only when told: by a slice read, or by a pause."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def _pacer(
    clock: Clock,
    busy: bool,
    share: float = 0.5,
    timeout_s: float = 30.0,
    max_slices: int = 10_000,  # by default no bound on the slices: the tests of their growth
) -> Pacer:
    return Pacer(
        lambda: busy,
        clock.pause,
        share,
        timeout_s,
        clock,
        slice_s=0.02,
        clock=clock,
        max_slices=max_slices,
    )


def _read(
    pacer: Pacer, clock: Clock, since: datetime, until: datetime, width: timedelta
) -> list[tuple[datetime, datetime]]:
    """Every slice, each taking 1 ms of reading per width it spans."""
    slices = []
    for start, end in pacer.slices(since, until, width):
        clock.now += 0.001 * ((end - start) / width)
        slices.append((start, end))
    return slices


@pytest.mark.parametrize(
    ("since", "until", "width"),
    [
        (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), DAY),
        (datetime(2025, 3, 4, 5, 17, tzinfo=UTC), datetime(2025, 4, 3, 2, 9, tzinfo=UTC), HOUR),
        (datetime(2025, 3, 4, 5, 17, tzinfo=UTC), datetime(2025, 3, 4, 5, 18, tzinfo=UTC), HOUR),
        (datetime(2025, 1, 1, 0, 30, tzinfo=UTC), datetime(2025, 3, 1, 23, 59, tzinfo=UTC), DAY),
    ],
)
def test_slices_cover_the_window_cut_only_between_buckets(
    since: datetime, until: datetime, width: timedelta
) -> None:
    clock = Clock()
    slices = _read(_pacer(clock, busy=True), clock, since, until, width)
    assert slices[0][0] == since
    assert slices[-1][1] == until
    for (_, end), (start, _) in itertools.pairwise(slices):
        assert end == start  # contiguous: no job read twice, none left out
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for _, end in slices[:-1]:
        assert (end - epoch) % width == timedelta(0)  # a bucket is never cut in two


def test_slices_grow_to_the_time_a_slice_should_take() -> None:
    clock = Clock()
    since = datetime(2025, 1, 1, tzinfo=UTC)
    slices = _read(_pacer(clock, busy=False), clock, since, since + 366 * DAY, DAY)
    widths = [(end - start) / DAY for start, end in slices]
    assert widths[:4] == [1, 4, 16, 20]  # at most 4 times the last; then 20 ms at 1 ms a day
    assert set(widths[3:-1]) == {20}


def test_a_read_pauses_only_while_changes_are_written() -> None:
    since = datetime(2025, 1, 1, tzinfo=UTC)
    idle = Clock()
    _read(_pacer(idle, busy=False), idle, since, since + 366 * DAY, DAY)
    assert idle.pauses == []
    assert idle.now == pytest.approx(0.366)  # at full speed

    busy = Clock()
    pacer = _pacer(busy, busy=True)
    slices = _read(pacer, busy, since, since + 366 * DAY, DAY)
    assert len(busy.pauses) == len(slices) - 1  # between two slices, never after the last
    assert busy.pauses[:3] == pytest.approx([0.001, 0.004, 0.016])  # as long as each took
    last = 0.001 * ((slices[-1][1] - slices[-1][0]) / DAY)
    assert pacer.paused_s == pytest.approx(0.366 - last)  # all but after the last slice
    assert busy.now == pytest.approx(2 * 0.366 - last)  # half the time reading


def test_a_smaller_share_pauses_longer() -> None:
    clock = Clock()
    since = datetime(2025, 1, 1, tzinfo=UTC)
    _read(_pacer(clock, busy=True, share=0.25), clock, since, since + 6 * DAY, DAY)
    assert clock.pauses == pytest.approx([0.003, 0.012])  # three times as long as each took


def test_the_pauses_count_towards_the_deadline() -> None:
    clock = Clock()
    since = datetime(2025, 1, 1, tzinfo=UTC)
    pacer = _pacer(clock, busy=True, share=0.01, timeout_s=0.05)
    with pytest.raises(ReadTimeoutError, match=r"took more than 0\.05 s"):
        _read(pacer, clock, since, since + 366 * DAY, DAY)
    assert clock.pauses == pytest.approx([0.049])  # not 99 ms: it ends at the deadline
    assert clock.now == pytest.approx(0.05 + 0.004)  # stopped after the slice in progress


def test_slices_that_cost_the_same_whatever_their_width_stay_few() -> None:
    """On a busy machine a slice's round trips alone can take longer than a slice should:
    the slices then never grow, and a year by the day was 366 slices and as many pauses
    (73 s at 0.1 s a slice: past the deadline). The window is cut in at most `max_slices`.
    """
    clock = Clock()
    since = datetime(2025, 1, 1, 7, tzinfo=UTC)
    pacer = _pacer(clock, busy=True, max_slices=32)
    slices = []
    for start, end in pacer.slices(since, since + 366 * DAY, DAY):
        clock.now += 0.1  # whatever the width
        slices.append((start, end))
    assert slices[0][0] == since
    assert slices[-1][1] == since + 366 * DAY
    assert len(slices) <= 33  # 32, and one more where the window starts within a day
    assert clock.now < 7  # read and paused: well within the 30 s deadline
