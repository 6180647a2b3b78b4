"""What `/v1/stats` tells about a window of jobs, as data plus pure functions: the window and
its buckets, histograms and their quantiles. Storage counts; this shapes and derives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from jobpulse.domain import TERMINAL, JobStatus, to_utc
from jobpulse.errors import ValidationError

#: The most buckets one answer holds (31 days by the hour): with WINDOW_MAX, the bound on
#: what one /v1/stats request costs (README: "What one client can hold").
BUCKETS_MAX = 31 * 24
#: The longest window (a year and a day, by the day).
WINDOW_MAX = timedelta(days=366)


class Bucket(StrEnum):
    """How a window's series is cut."""

    HOUR = "hour"
    DAY = "day"

    @property
    def width(self) -> timedelta:
        return timedelta(hours=1) if self == Bucket.HOUR else timedelta(days=1)

    def floor(self, moment: datetime) -> datetime:
        """The start of the bucket `moment` falls in."""
        moment = moment.replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0) if self == Bucket.DAY else moment


@dataclass(frozen=True, slots=True)
class Window:
    """The jobs created from `since` (included) to `until` (excluded), cut into buckets."""

    since: datetime
    until: datetime
    bucket: Bucket = Bucket.HOUR

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", to_utc("since", self.since))
        object.__setattr__(self, "until", to_utc("until", self.until))
        if self.since >= self.until:
            raise ValidationError("since must be earlier than until")
        span = f"{(self.until - self.since) / timedelta(days=1):.4g} days"
        if self.until - self.since > WINDOW_MAX:
            raise ValidationError(
                f"a window spans at most {WINDOW_MAX.days} days (this one: {span}); "
                "ask for a shorter one"
            )
        if len(self.starts()) > BUCKETS_MAX:
            raise ValidationError(
                f"at most {BUCKETS_MAX} buckets (by the hour: {BUCKETS_MAX // 24} days; this "
                f"window: {span}); use bucket=day for a window this long"
            )

    @classmethod
    def last_day(cls, now: datetime) -> Window:
        """The default: the last 24 hours up to `now`, by the hour."""
        return cls(now - timedelta(days=1), now, Bucket.HOUR)

    def starts(self) -> list[datetime]:
        """The start of every bucket the window touches, oldest first."""
        found = []
        moment = self.bucket.floor(self.since)
        while moment < self.until:
            found.append(moment)
            moment += self.bucket.width
        return found


@dataclass(frozen=True, slots=True)
class Histogram:
    """Observations counted at or under each bound (cumulative, as Prometheus does)."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int

    def quantile(self, q: float) -> float | None:
        """The `q` quantile, interpolated within its bucket; the last bound when it lies
        beyond; None without observations.
        """
        if self.count == 0:
            return None
        rank = q * self.count
        below_bound, below_count = 0.0, 0
        for bound, cumulative in zip(self.bounds, self.cumulative, strict=True):
            if cumulative >= rank:
                if cumulative == below_count:
                    return bound
                share = (rank - below_count) / (cumulative - below_count)
                return below_bound + (bound - below_bound) * share
            below_bound, below_count = bound, cumulative
        return self.bounds[-1]


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of the series."""

    start: datetime
    created: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Stats:
    """The figures of a window under the list filters."""

    window: Window
    by_status: dict[JobStatus, int]
    ttft: Histogram
    duration: Histogram
    stop_reasons: dict[str, int]
    series: list[Point]
    stuck: int
    webhooks: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def rate(self, status: JobStatus) -> float | None:
        """The share of the window's ended jobs that ended in `status` (None if none ended)."""
        ended = sum(number for status, number in self.by_status.items() if status in TERMINAL)
        return None if ended == 0 else self.by_status[status] / ended


def series(
    starts: list[datetime],
    created: dict[datetime, int],
    ended: dict[tuple[datetime, JobStatus], int],
) -> list[Point]:
    """The series over `starts`, zero where nothing happened."""
    return [
        Point(
            start,
            created.get(start, 0),
            ended.get((start, JobStatus.COMPLETED), 0),
            ended.get((start, JobStatus.FAILED), 0),
        )
        for start in starts
    ]
