"""What `/v1/stats` tells of the LLM calls in a window, as data plus pure functions: sums per
bucket, model and job type, TTFT and duration distributions per model, output tokens per
second. Storage counts (from the rollups and scans alike); this adds up and derives.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from jobpulse.stats.windows import Histogram, Window
from jobpulse.usage.rules import TOKEN_KINDS, Call, to_usd

#: What a sum of calls counts, in order (the summed columns of a rollup row).
SUMMED = (
    "calls",
    *TOKEN_KINDS,
    "cost_pusd",
    "unpriced",
    "timed_output_tokens",
    "timed_ns",
)


class Facet(IntEnum):
    """What a usage rollup row counts."""

    #: The sums of the calls (bucket -1).
    SUMS = 0
    #: Calls by the bucket of their time to first token.
    TTFT = 1
    #: Calls by the bucket of their duration.
    DURATION = 2


def call_sums(call: Call) -> tuple[int, ...]:
    """One call as the sums of SUMMED."""
    timed = call.duration_ns is not None and call.duration_ns > 0
    return (
        1,
        *(getattr(call, kind) for kind in TOKEN_KINDS),
        call.cost_pusd or 0,
        int(call.cost_pusd is None),
        call.output_tokens if timed else 0,
        (call.duration_ns or 0) if timed else 0,
    )


def bucket_index(nanoseconds: int, bounds: Sequence[float]) -> int:
    """The index of the first bound (seconds) `nanoseconds` is at or under; len(bounds)
    beyond the last (as storage/rollups.py's `bucket_of`).
    """
    return bisect_left([int(bound * 1e9) for bound in bounds], nanoseconds)


@dataclass(slots=True)
class Sums:
    """Calls added up: each of SUMMED."""

    values: list[int] = field(default_factory=lambda: [0] * len(SUMMED))

    def add(self, numbers: Sequence[int | None]) -> None:
        """Add sums as read back (a sum of no value is None)."""
        self.values = [
            mine + int(more or 0) for mine, more in zip(self.values, numbers, strict=True)
        ]

    def __getitem__(self, name: str) -> int:
        return self.values[SUMMED.index(name)]

    def shown(self) -> dict[str, int | float | None]:
        """Calls, tokens by kind, the known costs' sum in USD, how many calls had none."""
        return {
            "calls": self["calls"],
            **{kind: self[kind] for kind in TOKEN_KINDS},
            "cost_usd": to_usd(self["cost_pusd"]),
            "unpriced_calls": self["unpriced"],
        }

    def output_tokens_per_s(self) -> float | None:
        """Output tokens per second of the calls with a duration (None without any)."""
        seconds = self["timed_ns"] / 1e9
        return None if seconds <= 0 else self["timed_output_tokens"] / seconds


#: No calls: the sums of a bucket where none was (shared, never added to).
NONE = Sums()


@dataclass(slots=True)
class UsageFigures:
    """The LLM calls recorded in a window, added up."""

    window: Window
    ttft_bounds: tuple[float, ...]
    duration_bounds: tuple[float, ...]
    total: Sums = field(default_factory=Sums)
    series: dict[datetime, Sums] = field(default_factory=dict)
    by_model: dict[str, Sums] = field(default_factory=dict)
    by_job_type: dict[str, Sums] = field(default_factory=dict)
    #: Calls per model and facet (TTFT, DURATION), by bucket; index len(bounds): beyond.
    timings: dict[tuple[str, Facet], list[int]] = field(default_factory=dict)

    def add_point(self, start: datetime, numbers: Sequence[int | None]) -> None:
        """Add sums of the calls of one bucket."""
        self.series.setdefault(start, Sums()).add(numbers)

    def add_model(self, provider: str, model: str, numbers: Sequence[int | None]) -> None:
        """Add sums of the calls of one model (and to the total: every call has a model)."""
        self.total.add(numbers)
        self.by_model.setdefault(f"{provider}/{model}", Sums()).add(numbers)

    def add_job_type(self, job_type: str, numbers: Sequence[int | None]) -> None:
        """Add sums of the calls of jobs of one type."""
        self.by_job_type.setdefault(job_type, Sums()).add(numbers)

    def add_sums(
        self, start: datetime, job_type: str, provider: str, model: str, numbers: Sequence[int]
    ) -> None:
        """Add sums of the calls of one bucket, job type and model."""
        self.add_point(start, numbers)
        self.add_model(provider, model, numbers)
        self.add_job_type(job_type, numbers)

    def add_timing(self, provider: str, model: str, facet: int, at: int, number: int) -> None:
        """Add `number` calls of the model in bucket `at` of a facet's histogram."""
        kind = Facet(facet)
        bounds = self.ttft_bounds if kind == Facet.TTFT else self.duration_bounds
        counts = self.timings.setdefault((f"{provider}/{model}", kind), [0] * (len(bounds) + 1))
        counts[min(max(at, 0), len(bounds))] += int(number)

    def histogram(self, model_key: str, facet: Facet) -> Histogram:
        """The model's TTFT or duration histogram (seconds)."""
        bounds = self.ttft_bounds if facet == Facet.TTFT else self.duration_bounds
        counts = self.timings.get((model_key, facet), [0] * (len(bounds) + 1))
        cumulative, total = [], 0
        for number in counts[:-1]:
            total += number
            cumulative.append(total)
        return Histogram(bounds, tuple(cumulative), total + counts[-1])

    def points(self) -> list[tuple[datetime, Sums]]:
        """The series over every bucket of the window, zero where no call was."""
        return [(start, self.series.get(start, NONE)) for start in self.window.starts()]
