"""LLM usage figures as `/v1/stats` shows them (the `usage` of StatsPublic)."""

from __future__ import annotations

from jobpulse.stats.windows import Histogram
from jobpulse.usage.figures import Facet, UsageFigures
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


def usage_public(figures: UsageFigures) -> UsageStatsPublic:
    """The answer for `figures`."""
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
        series=[UsagePointPublic(start=start, **sums.shown()) for start, sums in figures.points()],
        by_model=by_model,
        by_job_type={
            job_type: UsageSumsPublic(**sums.shown())
            for job_type, sums in sorted(figures.by_job_type.items())
        },
    )
