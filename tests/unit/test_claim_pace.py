"""How far ahead a delivery worker claims: at its least while the senders go slowly, up to
MOST times that while they keep a fast pace, measured over spans of at least WINDOW_S.
"""

from __future__ import annotations

import pytest

from jobpulse.webhooks.pace import AHEAD_S, MOST, WINDOW_S, ClaimPace

LEAST = 64  # four messages for each of 16 senders


def _paced(sends_per_s: float, seconds: float = 0.1) -> ClaimPace:
    pace = ClaimPace(LEAST, now=0.0)
    for _ in range(round(sends_per_s * seconds)):
        pace.sent()
    pace.measure(seconds)
    return pace


def test_a_worker_starts_at_its_least() -> None:
    assert ClaimPace(LEAST, now=0.0).scale == 1


@pytest.mark.parametrize(
    ("sends_per_s", "scale"),
    [
        (0, 1),
        (100, 1),  # slow receivers: nothing claimed waits long for a sender
        (LEAST / AHEAD_S, 1),  # the least covers AHEAD_S of sending
        (2 * LEAST / AHEAD_S, 2),
        (3 * LEAST / AHEAD_S, 3),
        (10_000, MOST),  # a fast receiver: as far ahead as it may go
        (1_000_000, MOST),
    ],
)
def test_the_scale_covers_the_sending_of_the_next_claim(sends_per_s: float, scale: int) -> None:
    assert _paced(sends_per_s).scale == scale


def test_the_scale_holds_until_a_window_has_passed() -> None:
    pace = _paced(10_000)
    pace.measure(0.1 + WINDOW_S / 2)  # nothing sent, but too soon to tell
    assert pace.scale == MOST
    pace.measure(0.1 + WINDOW_S * 5)  # nothing sent over a whole window: back to the least
    assert pace.scale == 1


def test_each_window_counts_only_its_own_sends() -> None:
    pace = _paced(10_000)
    for _ in range(2):  # 2 sends in the next 0.1 s: the earlier burst no longer counts
        pace.sent()
    assert pace.measure(0.2) == 1


def test_what_is_held_scales_with_the_pace() -> None:
    pace = _paced(2 * LEAST / AHEAD_S)
    assert (pace.scaled(LEAST), pace.scaled(32)) == (2 * LEAST, 64)
