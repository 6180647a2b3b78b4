"""Rollups: `/v1/stats` over whole hours without scanning the jobs.

A row is appended to `job_rollup_deltas`, in the statement that writes the job, whenever a
counted field changes: the job's old values (an image that counts -1) and its new ones (+1);
a job created has no old image, one deleted or pruned no new one. The statements of
storage/changes.py that insert jobs write them, and on PostgreSQL those that update jobs;
triggers on `jobs` (migration 0009) the rest: deletes (a prune, a job deleted) and, on
SQLite, updates. So the deltas are exactly as committed as the jobs, on every write path.

`fold` sums deltas into `job_rollups` and deletes them in one statement (PostgreSQL) or one
writer transaction (SQLite), in the background; a reader adds the deltas not folded yet to
the rollups, so what it reads never depends on how far the fold has come. Each job image
counts in four facets, per organization, job type, hour, status and stop reason:
  CREATED   in the hour it was created;
  TTFT      the same, by the bucket of its time to first token (when it has one);
  DURATION  the same, by the bucket of its duration (when it has ended);
  ENDED     in the hour it ended (when it has);
and again by the day (facet + DAILY), which a window by the day reads for its whole days.
The fold sums the same rows by user too, into `user_rollups`: a member's view, or an
admin's of one user, reads those. Filters the rollups do not keep (metadata, ...) are scanned.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Result,
    Row,
    Select,
    Table,
    case,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from jobpulse.domain import ACTIVE, TERMINAL, Actor
from jobpulse.listing import JobFilter
from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS
from jobpulse.stats.windows import Bucket
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.tables import job_rollup_deltas, job_rollups, jobs, user_rollups

#: The most deltas one fold takes on SQLite (a write of the single writer: it stays short).
FOLD_LIMIT = 20_000
#: The list filters the rollups keep; any other filter is answered by a scan.
ROLLED_UP = frozenset({"statuses", "job_type", "stop_reason", "active"})
HOUR = timedelta(hours=1)
#: A job's counted fields that may change (a delta has their old and new values).
CHANGING = ("status", "stop_reason", "completed_at", "ttft_ns", "total_duration_ns")
#: A rollup row's columns, as `facets` selects them.
COLUMNS = (
    "organization_id",
    "hour",
    "facet",
    "job_type",
    "status",
    "stop_reason",
    "bucket",
    "jobs",
)
#: A user rollup row's columns.
USER_COLUMNS = ("organization_id", "user_id", *COLUMNS[1:])


class Facet(IntEnum):
    """What a rollup row counts (see the module's docstring), by the hour; the same plus
    DAILY by the day.
    """

    CREATED = 0
    TTFT = 1
    DURATION = 2
    ENDED = 3


DAILY = 4
DAY = timedelta(days=1)


def bucket_of(column: ColumnElement[Any], bounds: tuple[float, ...]) -> ColumnElement[Any]:
    """The index of the first bound (seconds) `column` (nanoseconds) is at or under: the
    number of bounds above the last, -1 for none.
    """
    whens: list[tuple[ColumnElement[bool], int]] = [(column.is_(None), -1)]
    whens += [(column <= int(bound * 1e9), index) for index, bound in enumerate(bounds)]
    return case(*whens, else_=len(bounds))


def images(source: FromClause) -> FromClause:
    """The job images in deltas `source`: the old values of each (sign -1), the new ones
    (+1), with the fields `facets` reads.
    """
    c = source.c
    sides = [
        select(
            literal(sign).label("sign"),
            c.organization_id,
            c.user_id,
            c.job_type,
            c.created_at,
            *(c[f"{side}_{name}"].label(name) for name in CHANGING),
        ).where(c[f"{side}_status"].is_not(None))
        for sign, side in ((-1, "old"), (1, "new"))
    ]
    return union_all(*sides).subquery()


def facets(
    dialect: Dialect,
    source: FromClause,
    since: datetime | None = None,
    until: datetime | None = None,
    where: list[ColumnElement[bool]] | None = None,
    span: Bucket = Bucket.HOUR,
    by_user: bool = False,
) -> list[Select[Any]]:
    """The rollup rows of every job image in `source` (`images`: their sign; jobs: 1), as
    `COLUMNS` (`USER_COLUMNS` by user), by the hour or (`span`) the day, each facet limited
    to [since, until) when given, and to `where`.
    """
    c = source.c
    sign = c.sign if "sign" in c else literal(1)
    reason = func.coalesce(c.stop_reason, "")
    made = (c.created_at, dialect.start_of(c.created_at, span))
    ended = (c.completed_at, dialect.start_of(c.completed_at, span))
    daily = DAILY if span == Bucket.DAY else 0
    duration = case((c.completed_at.is_not(None), c.total_duration_ns))
    shapes = [
        (Facet.CREATED, made, literal(-1), None),
        (Facet.TTFT, made, bucket_of(c.ttft_ns, TTFT_BUCKETS), c.ttft_ns.is_not(None)),
        (Facet.DURATION, made, bucket_of(duration, DURATION_BUCKETS), duration.is_not(None)),
        (Facet.ENDED, ended, literal(-1), c.completed_at.is_not(None)),
    ]
    selects = []
    for facet, (moment, hour), bucket, present in shapes:
        query = select(
            c.organization_id.label("organization_id"),
            *([c.user_id.label("user_id")] if by_user else []),
            hour.label("hour"),
            literal(int(facet) + daily).label("facet"),
            c.job_type.label("job_type"),
            c.status.label("status"),
            reason.label("stop_reason"),
            bucket.label("bucket"),
            sign.label("jobs"),
        )
        query = query.where(*(where or ()))
        if present is not None:
            query = query.where(present)
        if since is not None:
            query = query.where(moment >= since)
        if until is not None:
            query = query.where(moment < until)
        selects.append(query)
    return selects


def _both_spans(dialect: Dialect, source: FromClause, by_user: bool = False) -> list[Select[Any]]:
    return facets(dialect, source, by_user=by_user) + facets(
        dialect, source, span=Bucket.DAY, by_user=by_user
    )


def fold(connection: Connection, limit: int | None = FOLD_LIMIT) -> int:
    """Sum the deltas into the rollups and delete them: on PostgreSQL every delta committed,
    in one statement; on SQLite up to `limit` (None: all) of the oldest. How many rollup rows
    changed (0: nothing was left to fold, or another replica is folding).
    """
    return dialect_of(connection).fold_rollups(connection, limit)


def sums_of(dialect: Dialect, source: FromClause) -> Select[Any]:
    """The rollup rows of the deltas `source` summed by user (`USER_COLUMNS`; a NULL user for
    the deltas that name none): what `into_rollups` adds to both tables, made once.
    """
    rows = union_all(*_both_spans(dialect, images(source), by_user=True)).subquery()
    key = [rows.c[name] for name in USER_COLUMNS[:-1]]
    return select(*key, func.sum(rows.c.jobs).label("jobs")).group_by(*key)


def into_rollups(
    sums: FromClause,
    upsert: Any,
    where: tuple[ColumnElement[bool], ...] = (),
    table: Table = job_rollups,
) -> Any:
    """`upsert` (the database's INSERT of `table`, `job_rollups` or `user_rollups`, with ON
    CONFLICT) adding the rollup rows `sums` (as `sums_of` makes them) to it, in key order,
    those `where` holds (by user: those that name one).
    """
    by_user = table is user_rollups
    key = [sums.c[name] for name in (USER_COLUMNS if by_user else COLUMNS)[:-1]]
    if by_user:  # the sums are by user already
        summed = select(*key, sums.c.jobs).where(*where, sums.c.user_id.is_not(None))
    else:
        summed = select(*key, func.sum(sums.c.jobs)).where(*where).group_by(*key)
    summed = summed.order_by(*key)
    statement = upsert.from_select([*(column.name for column in key), "jobs"], summed)
    return statement.on_conflict_do_update(
        index_elements=[column.name for column in key],
        set_={"jobs": table.c.jobs + statement.excluded.jobs},
    )


def enter_jobs(connection: Connection) -> int:
    """Count in the rollups every job written outside jobpulse's write path (an import, a
    seed): a delta of each as created; how many. Once only: a job entered twice counts twice.
    """
    fixed = ("organization_id", "user_id", "job_type", "created_at")
    columns = [*fixed, *(f"new_{name}" for name in CHANGING)]
    every_job = select(*(jobs.c[name] for name in (*fixed, *CHANGING)))
    entered = job_rollup_deltas.insert().from_select(columns, every_job)
    return int(connection.execute(entered).rowcount)


def users_of_jobs(dialect: Dialect) -> Select[Any]:
    """Every job's rollup rows by user, summed, as `USER_COLUMNS`: what `user_rollups`
    holds once every delta is folded (migration 0015 starts it from them).
    """
    rows = union_all(*_both_spans(dialect, jobs, by_user=True)).subquery()
    key = [rows.c[name] for name in USER_COLUMNS[:-1]]
    return select(*key, func.sum(rows.c.jobs)).group_by(*key)


def drop_empty(connection: Connection) -> int:
    """Delete rollup rows that count no job any more; how many."""
    return sum(
        int(connection.execute(delete(table).where(table.c.jobs == 0)).rowcount)
        for table in (job_rollups, user_rollups)
    )


def pending(connection: Connection) -> int:
    """How many deltas wait to be folded."""
    return int(connection.execute(select(func.count()).select_from(job_rollup_deltas)).scalar_one())


def totals(connection: Connection, by_user: bool = False) -> list[Row[Any]]:
    """Every rollup key's count of jobs (by user: of `user_rollups`), folded and waiting
    alike (what a fold never changes), in key order, zeros left out.
    """
    dialect = dialect_of(connection)
    table, columns = (user_rollups, USER_COLUMNS) if by_user else (job_rollups, COLUMNS)
    stored = select(*(table.c[name] for name in columns))
    waiting = _both_spans(dialect, images(job_rollup_deltas), by_user)
    rows = union_all(stored, *waiting).subquery()
    key = [rows.c[name] for name in columns[:-1]]
    counted = func.sum(rows.c.jobs)
    named = (rows.c.user_id.is_not(None),) if by_user else ()
    summed = select(*key, counted).where(*named).group_by(*key).having(counted != 0)
    summed = summed.order_by(*key)
    return list(connection.execute(summed))


def answers(actor: Actor, query: JobFilter) -> bool:
    """Whether the rollups can answer the actor's view under `query`: an organization's
    (an admin's), or one user's (a member's own; an admin's under `user_id`), under the
    filters they keep.
    """
    kept = ROLLED_UP | {"user_id"} if actor.is_admin else ROLLED_UP
    return all(
        field.name in kept or getattr(query, field.name) in (None, {}) for field in fields(query)
    )


def _user_of(actor: Actor, query: JobFilter) -> str | None:
    """The user whose rollups answer the view (None: the organization's)."""
    return query.user_id if actor.is_admin else actor.user_id


def whole_hours(since: datetime, until: datetime) -> tuple[datetime, datetime] | None:
    """The whole hours within [since, until) as (first, end), if there is one."""
    return _whole(since, until, HOUR)


def _whole(since: datetime, until: datetime, span: timedelta) -> tuple[datetime, datetime] | None:
    """The whole spans (hours or days, in UTC) within [since, until), if there is one."""
    origin = since.replace(hour=0, minute=0, second=0, microsecond=0)
    first = origin + -((origin - since) // span) * span
    end = origin + ((until - origin) // span) * span
    return (first, end) if first < end else None


def _filters(source: FromClause, actor: Actor, query: JobFilter) -> list[ColumnElement[bool]]:
    c = source.c
    found = [c.organization_id == actor.organization_id]
    if (user := _user_of(actor, query)) is not None:
        found.append(c.user_id == user)
    if query.job_type is not None:
        found.append(c.job_type == query.job_type)
    if query.statuses is not None:
        found.append(c.status.in_(sorted(query.statuses)))
    if query.active is not None:
        found.append(c.status.in_(sorted(ACTIVE if query.active else TERMINAL)))
    if query.stop_reason is not None:
        found.append(c.stop_reason == query.stop_reason)
    return found


#: The two sums `read` gives: the series (jobs created by bucket; ended by bucket and status)
#: and the window's totals (jobs created by status and stop reason; by TTFT and duration
#: bucket).
SERIES, TOTALS = 0, 1
_ENDS = ("completed", "failed")


def read(
    connection: Connection,
    actor: Actor,
    query: JobFilter,
    hours: tuple[datetime, datetime],
    bucket: Bucket,
) -> Result[Any]:
    """The rollup rows (folded and not) of the actor's jobs under `query` in the whole
    `hours`, as (SERIES or TOTALS, facet, bucket start, status, stop_reason, bucket index,
    jobs), summed each way with only the columns it keeps: a few thousand rows at most for
    a month by the hour. The totals read the whole days in `hours` by the day, the series
    too when the bucket is a day; the rest by the hour.
    """
    first, end = hours
    dialect = dialect_of(connection)
    deltas = images(job_rollup_deltas)
    waiting = facets(dialect, deltas, first, end, _filters(deltas, actor, query))
    series = _rows(actor, query, hours, bucket == Bucket.DAY, (Facet.CREATED, Facet.ENDED))
    series += [waiting[Facet.CREATED], waiting[Facet.ENDED]]
    totals = _rows(actor, query, hours, True, (Facet.CREATED, Facet.TTFT, Facet.DURATION))
    totals += [waiting[Facet.CREATED], waiting[Facet.TTFT], waiting[Facet.DURATION]]
    s = union_all(*series).subquery()
    facet = s.c.facet % DAILY
    ended = facet == Facet.ENDED
    series_key = (facet, floor_to(dialect, s.c.hour, bucket), case((ended, s.c.status)))
    by_bucket = (
        select(literal(SERIES), *series_key, null(), literal(-1), func.sum(s.c.jobs))
        .where(or_(~ended, s.c.status.in_(_ENDS)))
        .group_by(*series_key)
    )
    t = union_all(*totals).subquery()
    facet = t.c.facet % DAILY
    created = facet == Facet.CREATED
    totals_key = (facet, case((created, t.c.status)), case((created, t.c.stop_reason)), t.c.bucket)
    by_kind = select(
        literal(TOTALS), totals_key[0], null(), *totals_key[1:], func.sum(t.c.jobs)
    ).group_by(*totals_key)
    return connection.execute(union_all(by_bucket, by_kind))


def _rows(
    actor: Actor,
    query: JobFilter,
    hours: tuple[datetime, datetime],
    by_day: bool,
    wanted: tuple[Facet, ...],
) -> list[Select[Any]]:
    """The folded rollup rows of `wanted` facets in `hours` (`by_day`: whole days by the
    day, the rest by the hour), as `COLUMNS`.
    """
    first, end = hours
    spans = [(first, end, 0)]
    days = _whole(first, end, DAY) if by_day else None
    if days is not None:
        spans = [(first, days[0], 0), (*days, DAILY), (days[1], end, 0)]
    table = job_rollups if _user_of(actor, query) is None else user_rollups
    r = table.c
    return [
        select(*(r[name] for name in COLUMNS)).where(
            *_filters(table, actor, query),
            r.hour >= since,
            r.hour < until,
            r.facet.in_([int(facet) + offset for facet in wanted]),
        )
        for since, until, offset in spans
        if since < until
    ]


def floor_to(dialect: Dialect, column: ColumnElement[Any], bucket: Bucket) -> ColumnElement[Any]:
    """`column` floored to its bucket, in UTC: a naive timestamp or its text (see
    `Dialect.floor_to`).
    """
    return dialect.floor_to(column, bucket)
