"""When a failed delivery is tried again. Pure: the caller passes the clock and the dice."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum


class AttemptState(StrEnum):
    """What an attempt leaves the message in."""

    #: 2xx: done.
    DELIVERED = "delivered"
    #: Failed; another attempt is scheduled.
    RETRYING = "retrying"
    #: 410 Gone: the receiver asked us to stop.
    FAILED = "failed"
    #: Failed and no attempt is left.
    EXHAUSTED = "exhausted"


def jitter(delay: float, rng: Callable[[], float] = random.random) -> float:
    """`delay` spread by ±10%, so that retries of many messages do not arrive together."""
    return delay * (0.9 + 0.2 * rng())


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), if valid; any
    other value (negative, fractional, garbage, not ASCII) is None.
    """
    if header is None:
        return None
    header = header.strip()
    if header.isascii() and header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
        seconds = (when - now).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(seconds, 0.0)


def decide(
    attempt: int,
    status_code: int | None,
    now: datetime,
    schedule: tuple[float, ...],
    retry_after: float | None = None,
    spread: Callable[[float], float] = jitter,
) -> tuple[AttemptState, datetime | None]:
    """The state after attempt number `attempt` (1-based) and when the next one is due.

    `schedule[n]` is the delay before attempt n+1; Retry-After wins when it asks for longer,
    up to the schedule's longest delay (a receiver cannot park a message for ever).
    """
    if status_code is not None and 200 <= status_code < 300:
        return AttemptState.DELIVERED, None
    if status_code == 410:
        return AttemptState.FAILED, None
    if attempt >= len(schedule):
        return AttemptState.EXHAUSTED, None
    delay = max(spread(schedule[attempt]), min(retry_after or 0.0, max(schedule)))
    return AttemptState.RETRYING, now + timedelta(seconds=delay)
