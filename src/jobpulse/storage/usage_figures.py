"""`/v1/stats`' LLM usage figures of a window: whole hours read from the usage rollups
(storage/usage_rollups.py) where they answer the view, the rest (the parts of an hour at the
window's edges, or any view the rollups do not keep) scanned from the calls.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, case, func, select

from jobpulse.domain import Actor
from jobpulse.listing import JobFilter
from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS
from jobpulse.stats.windows import Bucket, Window
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.feature_tables import llm_usage, llm_usage_rollups
from jobpulse.storage.repository import job_filter_clauses
from jobpulse.storage.rollups import bucket_of, floor_to, whole_hours
from jobpulse.storage.tables import UTCDateTime, jobs
from jobpulse.usage.figures import SUMMED, Facet, UsageFigures
from jobpulse.usage.rules import TOKEN_KINDS

#: The list filters the usage rollups keep; any other is answered by a scan.
ROLLED_UP = frozenset({"job_type", "model"})


def answers(actor: Actor, query: JobFilter) -> bool:
    """Whether the usage rollups can answer the actor's view under `query`: an
    organization's (an admin's) under the filters they keep.
    """
    return actor.is_admin and all(
        field.name in ROLLED_UP or getattr(query, field.name) in (None, {})
        for field in fields(query)
    )


def usage_figures(
    connection: Connection, actor: Actor, query: JobFilter, window: Window
) -> UsageFigures:
    """The LLM calls recorded in `window` of the jobs the actor may see under `query` (a
    `model` filter keeps that model's calls): whole hours from the rollups where they answer,
    the rest scanned.
    """
    figures = UsageFigures(window, TTFT_BUCKETS, DURATION_BUCKETS)
    hours = whole_hours(window.since, window.until)
    spans = [(window.since, window.until)]
    if hours is not None and answers(actor, query):
        _read_rollups(connection, actor, query, hours, window.bucket, figures)
        spans = [(window.since, hours[0]), (hours[1], window.until)]
    for first, end in spans:
        if first < end:
            _scan(connection, actor, query, (first, end), window.bucket, figures)
    return figures


def _in_range(column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    return [
        column >= bindparam("b_since", type_=UTCDateTime()),
        column < bindparam("b_until", type_=UTCDateTime()),
    ]


def _read_rollups(
    connection: Connection,
    actor: Actor,
    query: JobFilter,
    hours: tuple[datetime, datetime],
    bucket: Bucket,
    figures: UsageFigures,
) -> None:
    r = llm_usage_rollups.c
    where = [r.organization_id == actor.organization_id, *_in_range(r.hour)]
    if query.job_type is not None:
        where.append(r.job_type == query.job_type)
    if query.model is not None:
        where.append(r.model == query.model)
    params = {"b_since": hours[0], "b_until": hours[1]}
    start = floor_to(dialect_of(connection), r.hour, bucket)
    summed = [func.sum(r[name]) for name in SUMMED]
    sums = select(*summed).where(*where, r.facet == Facet.SUMS.value)
    for row in connection.execute(sums.add_columns(start).group_by(start), params):
        figures.add_point(_moment(row[-1]), row[:-1])
    model = (r.provider, r.model)
    for row in connection.execute(sums.add_columns(*model).group_by(*model), params):
        figures.add_model(row[-2], row[-1], row[:-2])
    for row in connection.execute(sums.add_columns(r.job_type).group_by(r.job_type), params):
        figures.add_job_type(row[-1], row[:-1])
    timing = (r.provider, r.model, r.facet, r.bucket)
    timings = select(*timing, func.sum(r.calls)).where(
        *where, r.facet.in_([Facet.TTFT.value, Facet.DURATION.value])
    )
    for provider, model, facet, at, number in connection.execute(timings.group_by(*timing), params):
        figures.add_timing(provider, model, facet, at, number)


def _scan(
    connection: Connection,
    actor: Actor,
    query: JobFilter,
    span: tuple[datetime, datetime],
    bucket: Bucket,
    figures: UsageFigures,
) -> None:
    u = llm_usage.c
    clauses, params = job_filter_clauses(dialect_of(connection), actor, replace(query, model=None))
    where = [*clauses, *_in_range(u.recorded_at)]
    if query.model is not None:
        where.append(u.model == query.model)
    params |= {"b_since": span[0], "b_until": span[1]}
    # The calls of the organization in the span, on their own index: none (most windows of
    # an organization without LLM calls) and there is nothing to sum, no jobs to scan.
    mine = [u.organization_id == actor.organization_id, *_in_range(u.recorded_at)]
    if connection.execute(select(u.job_id).where(*mine).limit(1), params).first() is None:
        return
    where.append(u.organization_id == actor.organization_id)
    joined = llm_usage.join(jobs, jobs.c.id == u.job_id)
    start = floor_to(dialect_of(connection), u.recorded_at, bucket)
    timed = u.duration_ns > 0
    summed = (
        func.count(),
        *(func.sum(u[kind]) for kind in TOKEN_KINDS),
        func.sum(u.cost_pusd),
        func.sum(case((u.cost_pusd.is_(None), 1), else_=0)),
        func.sum(case((timed, u.output_tokens), else_=0)),
        func.sum(case((timed, u.duration_ns), else_=0)),
    )
    # One pass over the calls each (with their jobs): what a bucket, job type and model sum
    # to; how many calls each pair of TTFT and duration buckets (-1: none) counts.
    key = (start, u.job_type, u.provider, u.model)
    sums = select(*summed, *key).select_from(joined).where(*where).group_by(*key)
    for *numbers, moment, job_type, provider, model in connection.execute(sums, params):
        figures.add_sums(_moment(moment), job_type, provider, model, numbers)
    ttft, duration = bucket_of(u.ttft_ns, TTFT_BUCKETS), bucket_of(u.duration_ns, DURATION_BUCKETS)
    timing = (u.provider, u.model, ttft, duration)
    timings = select(*timing, func.count()).select_from(joined).where(*where).group_by(*timing)
    for provider, model, ttft_at, duration_at, number in connection.execute(timings, params):
        for facet, at in ((Facet.TTFT, ttft_at), (Facet.DURATION, duration_at)):
            if at >= 0:
                figures.add_timing(provider, model, facet, at, number)


def _moment(value: Any) -> datetime:
    """A bucket start as read back: a naive UTC timestamp (PostgreSQL) or text (SQLite)."""
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)
