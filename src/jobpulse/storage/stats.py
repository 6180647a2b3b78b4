"""Figures over many jobs: the metrics gauges (whole database) and `/v1/stats` (a window of
one caller's view under the list filters, counted by the database in a few aggregates).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, func, or_, select

from jobpulse.domain import ACTIVE, Actor, JobStatus
from jobpulse.figures import Bucket, Histogram, Stats, Window, series
from jobpulse.listing import JobFilter
from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS, Gauges
from jobpulse.storage.batches import followed
from jobpulse.storage.outbox import pending_count
from jobpulse.storage.repository import job_filter_clauses
from jobpulse.storage.tables import UTCDateTime, jobs, outbox


def gauges(connection: Connection) -> Gauges:
    """Active jobs by status, stuck jobs, webhooks waiting to be delivered, batches followed."""
    active = dict.fromkeys(sorted(ACTIVE), 0)
    rows = connection.execute(
        select(jobs.c.status, func.count())
        .where(jobs.c.status.in_(sorted(ACTIVE)))
        .group_by(jobs.c.status)
    )
    for status, number in rows:
        active[JobStatus(status)] = number
    stuck = connection.execute(
        select(func.count()).where(
            jobs.c.stuck_since.is_not(None), jobs.c.status.in_(sorted(ACTIVE))
        )
    ).scalar_one()
    return Gauges(active, int(stuck), pending_count(connection), followed(connection))


def _bucketed(dialect: str, column: ColumnElement[Any], bucket: Bucket) -> ColumnElement[Any]:
    """`column` floored to its bucket, in UTC."""
    if dialect == "postgresql":
        return func.date_trunc(bucket.value, func.timezone("UTC", column))
    pattern = "%Y-%m-%d %H:00:00" if bucket == Bucket.HOUR else "%Y-%m-%d 00:00:00"
    return func.strftime(pattern, column)


def _moment(value: Any) -> datetime:
    """A bucket start as read back: a naive UTC timestamp (PostgreSQL) or text (SQLite)."""
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


def _bucket_of(column: ColumnElement[Any], bounds: tuple[float, ...]) -> ColumnElement[Any]:
    """The index of the first bound (seconds) `column` (nanoseconds) is at or under: the
    number of bounds above the last, -1 for none.
    """
    whens: list[tuple[ColumnElement[bool], int]] = [(column.is_(None), -1)]
    whens += [(column <= int(bound * 1e9), index) for index, bound in enumerate(bounds)]
    return case(*whens, else_=len(bounds))


def _cumulative(counts: list[int]) -> tuple[int, ...]:
    """Cumulative counts at or under each bound, from the counts in each bucket."""
    total = 0
    found = []
    for number in counts:
        total += number
        found.append(total)
    return tuple(found)


def window_stats(connection: Connection, actor: Actor, query: JobFilter, window: Window) -> Stats:
    """The figures of the jobs created in `window` that the actor may see under `query`: one
    grouped scan of the window's jobs, one of those that ended in it.
    """
    dialect = connection.dialect.name
    clauses, params = job_filter_clauses(dialect, actor, query)
    params |= {"b_since": window.since, "b_until": window.until}
    since = bindparam("b_since", type_=UTCDateTime())
    until = bindparam("b_until", type_=UTCDateTime())
    created = (*clauses, jobs.c.created_at >= since, jobs.c.created_at < until)
    ended_at = (*clauses, jobs.c.completed_at >= since, jobs.c.completed_at < until)
    duration = case((jobs.c.completed_at.is_not(None), jobs.c.total_duration_ns))
    groups = (
        _bucketed(dialect, jobs.c.created_at, window.bucket),
        jobs.c.status,
        jobs.c.stop_reason,
        _bucket_of(jobs.c.ttft_ns, TTFT_BUCKETS),
        _bucket_of(duration, DURATION_BUCKETS),
    )
    by_status = dict.fromkeys(JobStatus, 0)
    reasons: dict[str, int] = {}
    made: dict[datetime, int] = {}
    ttft = [0] * len(TTFT_BUCKETS)
    durations = [0] * len(DURATION_BUCKETS)
    counts = {"ttft": 0, "duration": 0}
    rows = connection.execute(
        select(*groups, func.count()).where(*created).group_by(*groups), params
    )
    for start, status, reason, ttft_at, duration_at, number in rows:
        by_status[JobStatus(status)] += number
        moment = _moment(start)
        made[moment] = made.get(moment, 0) + number
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + number
        for at, buckets, name in ((ttft_at, ttft, "ttft"), (duration_at, durations, "duration")):
            if at >= 0:
                counts[name] += number
                if at < len(buckets):
                    buckets[at] += number
    ended_bucket = _bucketed(dialect, jobs.c.completed_at, window.bucket)
    ends = connection.execute(
        select(ended_bucket, jobs.c.status, func.count())
        .where(*ended_at, jobs.c.status.in_([JobStatus.COMPLETED, JobStatus.FAILED]))
        .group_by(ended_bucket, jobs.c.status),
        params,
    )
    stuck = connection.execute(
        select(func.count()).where(
            *clauses, jobs.c.stuck_since.is_not(None), jobs.c.status.in_(sorted(ACTIVE))
        ),
        params,
    ).scalar_one()
    return Stats(
        window=window,
        by_status=by_status,
        ttft=Histogram(TTFT_BUCKETS, _cumulative(ttft), counts["ttft"]),
        duration=Histogram(DURATION_BUCKETS, _cumulative(durations), counts["duration"]),
        stop_reasons=reasons,
        series=series(
            window.starts(),
            made,
            {(_moment(start), JobStatus(status)): int(n) for start, status, n in ends},
        ),
        stuck=int(stuck),
        webhooks=_webhooks(connection, clauses, params, since, until),
    )


def _webhooks(
    connection: Connection,
    clauses: tuple[ColumnElement[bool], ...],
    params: dict[str, Any],
    since: ColumnElement[Any],
    until: ColumnElement[Any],
) -> dict[str, int]:
    """The actor's jobs' webhooks: waiting now, delivered and exhausted in the window."""
    state = outbox.c.state
    in_window = and_(outbox.c.created_at >= since, outbox.c.created_at < until)
    delivered = and_(outbox.c.delivered_at >= since, outbox.c.delivered_at < until)
    counts = connection.execute(
        select(
            func.sum(case((state == "pending", 1), else_=0)),
            func.sum(case((and_(state == "delivered", delivered), 1), else_=0)),
            func.sum(case((and_(state == "exhausted", in_window), 1), else_=0)),
        )
        .select_from(outbox.join(jobs, jobs.c.id == outbox.c.job_id))
        .where(*clauses, or_(state == "pending", in_window, delivered)),
        params,
    ).one()
    pending, sent, exhausted = (int(value or 0) for value in counts)
    return {"pending": pending, "delivered": sent, "exhausted": exhausted}
