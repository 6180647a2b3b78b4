"""LLM usage figures as `/v1/stats` shows them (the `usage` of StatsPublic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobpulse.stats.windows import Histogram
from jobpulse.usage.figures import NONE, Facet, UsageFigures
from jobpulse.usage.schemas import (
    ModelFiguresPublic,
    QuantilesPublic,
    UsagePointPublic,
    UsageStatsPublic,
    UsageSumsPublic,
)


def _quantiles(histogram: Histogram) -> QuantilesPublic:
    return QuantilesPublic(
        count=histogram.count,
        p50=histogram.quantile(0.5),
        p90=histogram.quantile(0.9),
        p99=histogram.quantile(0.99),
    )


def _point(start: datetime, sums: dict[str, int | float | None]) -> dict[str, Any]:
    return {"start": start, **sums}


def usage_public(figures: UsageFigures) -> UsageStatsPublic:
    """The answer for `figures`."""
    empty = NONE.shown()
    by_model = {
        key: ModelFiguresPublic(
            **sums.shown(),
            ttft=_quantiles(figures.histogram(key, Facet.TTFT)),
            duration=_quantiles(figures.histogram(key, Facet.DURATION)),
            output_tokens_per_s=sums.output_tokens_per_s(),
        )
        for key, sums in sorted(figures.by_model.items())
    }
    return UsageStatsPublic(
        **figures.total.shown(),
        # Constructed, not validated: jobpulse's own figures, a point a bucket.
        series=[
            UsagePointPublic.model_construct(
                **_point(start, empty if sums is NONE else sums.shown())
            )
            for start, sums in figures.points()
        ],
        by_model=by_model,
        by_job_type={
            job_type: UsageSumsPublic(**sums.shown())
            for job_type, sums in sorted(figures.by_job_type.items())
        },
    )
