"""The dashboard's LLM usage panels: tokens and cost per bucket and a row per model on the
overview, a job's totals and calls on its page. They read through the UsageRecorder, as
`/v1/stats` (its `usage`) and `GET /v1/jobs/{id}/usage` do, so the pages show the API's sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from markupsafe import Markup

from jobpulse.api.usage import call_public
from jobpulse.dashboard import charts
from jobpulse.domain import Actor, Job
from jobpulse.listing import JobFilter
from jobpulse.stats.windows import Window
from jobpulse.usage.recorder import UsageRecorder
from jobpulse.usage.schemas import CallPublic, ModelFiguresPublic, UsageStatsPublic
from jobpulse.usage.shown import usage_public

#: The most calls a job's page lists (the latest); the API lists them all.
CALLS_SHOWN = 100


def _recorder(request: Request) -> UsageRecorder:
    recorder: UsageRecorder = request.app.state.usage
    return recorder


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One model's line of the overview's table."""

    key: str
    provider: str
    model: str
    figures: ModelFiguresPublic
    #: The jobs page of the jobs that called the model (under the overview's job type).
    jobs_url: str


@dataclass(frozen=True, slots=True)
class OverviewUsage:
    """The overview's usage panels: the window's figures, their charts, a row per model."""

    figures: UsageStatsPublic
    tokens_chart: Markup | None
    cost_chart: Markup | None
    models: list[ModelRow]


async def overview_usage(
    request: Request, actor: Actor, query: JobFilter, window: Window, label_format: str
) -> OverviewUsage:
    """The LLM calls recorded in `window` of the actor's jobs under `query` (a `model`
    filter keeps that model's calls), as `/v1/stats` tells them.
    """
    figures = usage_public(await _recorder(request).figures(actor, query, window))
    models = [_model_row(key, shown, query) for key, shown in sorted(figures.by_model.items())]
    if not figures.calls:
        return OverviewUsage(figures, None, None, models)
    return OverviewUsage(
        figures,
        charts.tokens(figures.series, label_format),
        charts.cost(figures.series, label_format),
        models,
    )


def _model_row(key: str, figures: ModelFiguresPublic, query: JobFilter) -> ModelRow:
    provider, _, model = key.partition("/")  # `<provider>/<model>`: a model id may hold "/"
    given = {"model": model, "job_type": query.job_type}
    jobs_url = "/jobs?" + urlencode({name: value for name, value in given.items() if value})
    return ModelRow(key, provider, model, figures, jobs_url)


@dataclass(frozen=True, slots=True)
class JobUsage:
    """A job's usage panel: its totals, by model, and its latest calls."""

    totals: dict[str, Any] | None
    by_model: list[tuple[str, dict[str, Any]]]
    calls: list[CallPublic]
    #: How many calls the job has recorded (more than `calls` holds past CALLS_SHOWN).
    recorded: int


async def job_usage(request: Request, actor: Actor, job: Job) -> JobUsage:
    """The job's usage totals (its resource's `usage`) and its calls as the API lists them."""
    totals = job.usage
    if not totals:
        return JobUsage(None, [], [], 0)
    calls = await _recorder(request).list_calls(actor, job.id)
    shown = [call_public(job.id, call) for call in calls[-CALLS_SHOWN:]]
    by_model = sorted(dict(totals.get("by_model") or {}).items())
    return JobUsage(totals, by_model, shown, len(calls))
