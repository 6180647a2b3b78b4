"""Figures over many jobs: the metrics gauges (whole database) and `/v1/stats` (a window of
one caller's view under the list filters, counted by the database in a few aggregates).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, func, or_, select

from jobpulse.domain import ACTIVE, Actor, JobStatus
from jobpulse.listing import JobFilter
from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS, Gauges
from jobpulse.stats.windows import Bucket, Histogram, Stats, Window, series
from jobpulse.storage import rollups
from jobpulse.storage.batches import followed
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.outbox import pending_count
from jobpulse.storage.repository import job_filter_clauses
from jobpulse.storage.rollups import Facet, bucket_of, floor_to
from jobpulse.storage.scans import Pacer
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


def _moment(value: Any) -> datetime:
    """A bucket start as read back: a naive UTC timestamp (PostgreSQL) or text (SQLite)."""
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)


def _cumulative(counts: list[int]) -> tuple[int, ...]:
    """Cumulative counts at or under each bound, from the counts in each bucket."""
    total = 0
    found = []
    for number in counts:
        total += number
        found.append(total)
    return tuple(found)


@dataclass
class _Tally:
    """The window's figures as they are added up, from rollups and scans alike."""

    by_status: dict[JobStatus, int] = field(default_factory=lambda: dict.fromkeys(JobStatus, 0))
    reasons: dict[str, int] = field(default_factory=dict)
    made: dict[datetime, int] = field(default_factory=dict)
    ends: dict[tuple[datetime, JobStatus], int] = field(default_factory=dict)
    ttft: list[int] = field(default_factory=lambda: [0] * len(TTFT_BUCKETS))
    durations: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    counts: dict[str, int] = field(default_factory=lambda: {"ttft": 0, "duration": 0})

    def created(self, start: Any, status: str, reason: str | None, number: int) -> None:
        self.made_in(start, number)
        self.counted(status, reason, number)

    def made_in(self, start: Any, number: int) -> None:
        """`number` jobs created in the bucket from `start`."""
        moment = _moment(start)
        self.made[moment] = self.made.get(moment, 0) + number

    def counted(self, status: str, reason: str | None, number: int) -> None:
        """`number` jobs created in the window, of `status` and stop `reason`."""
        self.by_status[JobStatus(status)] += number
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + number

    def timed(self, name: str, at: int, number: int) -> None:
        """`number` jobs in bucket `at` of the TTFT or duration histogram (-1: none)."""
        if at >= 0:
            self.counts[name] += number
            buckets = self.ttft if name == "ttft" else self.durations
            if at < len(buckets):
                buckets[at] += number

    def ended(self, start: Any, status: str, number: int) -> None:
        if status in _COMPLETED_OR_FAILED:
            key = (_moment(start), JobStatus(status))
            self.ends[key] = self.ends.get(key, 0) + number

    def rolled_up(self, rows: Iterable[Any]) -> None:
        """Add rollup rows (see `rollups.read`)."""
        for part, facet, start, status, reason, at, number in rows:
            number = int(number)
            if part == rollups.SERIES:
                if facet == Facet.CREATED:
                    self.made_in(start, number)
                else:
                    self.ended(start, status, number)
            elif facet == Facet.CREATED:
                self.counted(status, reason, number)
            else:
                self.timed("ttft" if facet == Facet.TTFT else "duration", at, number)


_COMPLETED_OR_FAILED = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})


def _created(
    connection: Connection,
    clauses: tuple[ColumnElement[bool], ...],
    params: dict[str, Any],
    bucket: Bucket,
    tally: _Tally,
) -> None:
    """Add the jobs created within [b_since, b_until) (in `params`)."""
    since = bindparam("b_since", type_=UTCDateTime())
    until = bindparam("b_until", type_=UTCDateTime())
    duration = case((jobs.c.completed_at.is_not(None), jobs.c.total_duration_ns))
    groups = (
        floor_to(dialect_of(connection), jobs.c.created_at, bucket),
        jobs.c.status,
        jobs.c.stop_reason,
        bucket_of(jobs.c.ttft_ns, TTFT_BUCKETS),
        bucket_of(duration, DURATION_BUCKETS),
    )
    rows = connection.execute(
        select(*groups, func.count())
        .where(*clauses, jobs.c.created_at >= since, jobs.c.created_at < until)
        .group_by(*groups),
        params,
    )
    for start, status, reason, ttft_at, duration_at, number in rows:
        tally.created(start, status, reason, number)
        tally.timed("ttft", ttft_at, number)
        tally.timed("duration", duration_at, number)


def _ended(
    connection: Connection,
    clauses: tuple[ColumnElement[bool], ...],
    params: dict[str, Any],
    bucket: Bucket,
    tally: _Tally,
) -> None:
    """Add the jobs ended within [b_since, b_until) (in `params`); given c_since or c_until,
    only those created from c_since or before c_until.
    """
    ended = floor_to(dialect_of(connection), jobs.c.completed_at, bucket)
    where = [
        *clauses,
        jobs.c.completed_at >= bindparam("b_since", type_=UTCDateTime()),
        jobs.c.completed_at < bindparam("b_until", type_=UTCDateTime()),
        jobs.c.status.in_(sorted(_COMPLETED_OR_FAILED)),
    ]
    if "c_since" in params:
        where.append(jobs.c.created_at >= bindparam("c_since", type_=UTCDateTime()))
    if "c_until" in params:
        where.append(jobs.c.created_at < bindparam("c_until", type_=UTCDateTime()))
    ends = connection.execute(
        select(ended, jobs.c.status, func.count()).where(*where).group_by(ended, jobs.c.status),
        params,
    )
    for start, status, number in ends:
        tally.ended(start, status, number)


def _paced(
    connection: Connection,
    pacer: Pacer,
    clauses: tuple[ColumnElement[bool], ...],
    params: dict[str, Any],
    bucket: Bucket,
    tally: _Tally,
) -> None:
    """Add the jobs created, and those ended, within [b_since, b_until): those created in it
    in slices of their creation at the pacer's pace (sliced by their end instead, each slice
    of a member's view would walk all the member's ended jobs: no index holds a member's
    jobs by their end), then those created before it that ended in it.
    """
    first, end = params["b_since"], params["b_until"]
    for start, stop in pacer.slices(first, end, bucket.width):
        _created(connection, clauses, params | {"b_since": start, "b_until": stop}, bucket, tally)
        _ended(connection, clauses, params | {"c_since": start, "c_until": stop}, bucket, tally)
    _ended(connection, clauses, params | {"c_until": first}, bucket, tally)


def window_stats(
    connection: Connection, pacer: Pacer | None, actor: Actor, query: JobFilter, window: Window
) -> Stats:
    """The figures of the jobs created in `window` that the actor may see under `query`.

    An organization's view (an admin's) under the filters the rollups keep reads the window's
    whole hours from the rollups (storage/rollups.py) and scans only the parts of an hour at
    its edges; any other view scans the window: one grouped scan of its jobs, one of those
    that ended in it. With a `pacer`, the scans go in slices of whole buckets at its pace
    (buckets are apart in time and every figure is a sum: the slices add up to the same).
    """
    clauses, params = job_filter_clauses(dialect_of(connection), actor, query)
    tally = _Tally()
    hours = rollups.whole_hours(window.since, window.until)
    spans = [(window.since, window.until)]
    if hours is not None and rollups.answers(actor, query):
        tally.rolled_up(rollups.read(connection, actor, query, hours, window.bucket))
        spans = [(window.since, hours[0]), (hours[1], window.until)]
    for first, end in spans:
        if first >= end:
            continue
        span = params | {"b_since": first, "b_until": end}
        if pacer is not None:
            _paced(connection, pacer, clauses, span, window.bucket, tally)
        else:
            _created(connection, clauses, span, window.bucket, tally)
            _ended(connection, clauses, span, window.bucket, tally)
    params |= {"b_since": window.since, "b_until": window.until}
    # The status not as a column but as an expression: SQLite's planner would otherwise walk
    # every active job by status (160 ms at 1M) rather than the few stuck ones by their index.
    status = jobs.c.status.concat("")
    stuck = connection.execute(
        select(func.count()).where(
            *clauses, jobs.c.stuck_since.is_not(None), status.in_(sorted(ACTIVE))
        ),
        params,
    ).scalar_one()
    since = bindparam("b_since", type_=UTCDateTime())
    until = bindparam("b_until", type_=UTCDateTime())
    return Stats(
        window=window,
        by_status=tally.by_status,
        ttft=Histogram(TTFT_BUCKETS, _cumulative(tally.ttft), tally.counts["ttft"]),
        duration=Histogram(
            DURATION_BUCKETS, _cumulative(tally.durations), tally.counts["duration"]
        ),
        stop_reasons=tally.reasons,
        series=series(window.starts(), tally.made, tally.ends),
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
