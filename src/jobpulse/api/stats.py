"""/v1/stats: what happened to the caller's jobs in a window, under the list filters."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES, LIST_PARAMS, JobFilterQuery
from jobpulse.domain import JobStatus
from jobpulse.errors import ValidationError
from jobpulse.listing import JobFilter
from jobpulse.schemas import HistogramPublic, PointPublic, StatsPublic, UtcDatetime, WebhookHealth
from jobpulse.stats.figures import Figures
from jobpulse.stats.windows import Bucket, Histogram, Stats, Window
from jobpulse.usage.figures import UsageFigures
from jobpulse.usage.recorder import UsageRecorder
from jobpulse.usage.shown import usage_public

router = APIRouter(prefix="/v1", tags=["stats"], responses=ERROR_RESPONSES)
#: The query parameters of stats besides the list filters.
STATS_PARAMS = (LIST_PARAMS - {"limit", "ascending", "before", "after"}) | {
    "since",
    "until",
    "bucket",
}
StatsFilters = Annotated[JobFilter, Depends(JobFilterQuery(STATS_PARAMS))]


def _histogram(histogram: Histogram) -> HistogramPublic:
    return HistogramPublic(
        count=histogram.count,
        p50=histogram.quantile(0.5),
        p90=histogram.quantile(0.9),
        p99=histogram.quantile(0.99),
        buckets=[
            {"le": bound, "count": count}
            for bound, count in zip(histogram.bounds, histogram.cumulative, strict=True)
        ],
    )


def stats_public(stats: Stats) -> StatsPublic:
    """The answer for `stats`."""
    window = stats.window
    return StatsPublic(
        since=window.since,
        until=window.until,
        bucket=window.bucket.value,
        total=stats.total,
        by_status={status.value: n for status, n in stats.by_status.items()},
        completion_rate=stats.rate(JobStatus.COMPLETED),
        failure_rate=stats.rate(JobStatus.FAILED),
        ttft=_histogram(stats.ttft),
        duration=_histogram(stats.duration),
        stop_reasons=stats.stop_reasons,
        # Built by jobpulse from its own figures: constructed, not validated (720 points by
        # the hour over 30 days were a third of a request's time on the event loop).
        series=[
            PointPublic.model_construct(
                start=point.start,
                created=point.created,
                completed=point.completed,
                failed=point.failed,
            )
            for point in stats.series
        ],
        stuck=stats.stuck,
        webhooks=WebhookHealth.model_validate(stats.webhooks),
    )


@router.get("/stats", response_model=StatsPublic)
async def get_stats(
    query: StatsFilters,
    caller: Authenticated,
    request: Request,
    since: Annotated[UtcDatetime | None, Query()] = None,
    until: Annotated[UtcDatetime | None, Query()] = None,
    bucket: Bucket = Bucket.HOUR,
) -> Response:
    """Counts by status, completion and failure rates, TTFT and duration quantiles and
    buckets, stop reasons, a series per hour or day, stuck jobs and webhook health, for the
    jobs created from `since` to `until` under the filters (`until` defaults to now and
    `since` to the day before `until`); and `usage`, the LLM calls recorded in the window.
    """
    day = timedelta(days=1)
    try:
        if until is None:
            until = caller.jobs.now()
        window = Window(since or until - day, until, bucket)
    except OverflowError:
        raise ValidationError("the window must lie within the years 1 to 9999") from None
    stats = await Figures(caller.jobs).stats(caller.actor, query, window)
    recorder: UsageRecorder = request.app.state.usage
    usage = await recorder.figures(caller.actor, query, window)
    # Built off the event loop (a point a bucket: tens of milliseconds by the hour over a
    # month, which the loop then gives the other requests every switch interval), and into
    # bytes once, straight from the model (FastAPI would dump it to Python, then encode).
    return Response(await asyncio.to_thread(_answer, stats, usage), media_type="application/json")


def _answer(stats: Stats, usage: UsageFigures) -> bytes:
    shown = stats_public(stats).model_copy(update={"usage": usage_public(usage)})
    return shown.model_dump_json().encode()
