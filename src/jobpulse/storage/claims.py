"""Claims of the outbox: due messages leased to one delivery worker (FOR UPDATE SKIP LOCKED
on PostgreSQL), within each organization's and host's share of what it holds, so one
tenant's backlog cannot hold up another's callbacks.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    not_,
    or_,
    select,
    update,
)

from jobpulse.storage import prepared
from jobpulse.storage.outbox import PENDING, Claimed
from jobpulse.storage.tables import UTCDateTime, jobs, outbox


@dataclass(frozen=True, slots=True)
class Shares:
    """What one process may still claim: at most `org_max` messages held per organization
    and `host_max` per host, `held_org` and `held_host` being what it holds already.
    Messages with no organization (operator alerts and step events) count by host only.
    """

    org_max: int
    host_max: int
    held_org: Mapping[str, int] = field(default_factory=dict)
    held_host: Mapping[str, int] = field(default_factory=dict)

    def full_orgs(self) -> list[str]:
        return sorted(org for org, held in self.held_org.items() if held >= self.org_max)

    def full_hosts(self) -> list[str]:
        return sorted(host for host, held in self.held_host.items() if held >= self.host_max)

    def may_fill(self, limit: int) -> bool:
        """Whether `limit` more messages could fill an organization's or a host's share (a
        claim then reads more candidates, to pass over those of the ones that fill).
        """
        org_room = self.org_max - max(self.held_org.values(), default=0)
        host_room = self.host_max - max(self.held_host.values(), default=0)
        return limit > min(org_room, host_room)

    def fits(self, limit: int) -> bool:
        """Whether `limit` more messages fit in every share held already (one that holds
        none may still fill, see `claim_due`).
        """
        return all(held + limit <= self.org_max for held in self.held_org.values()) and all(
            held + limit <= self.host_max for held in self.held_host.values()
        )

    def holding(self, claimed: Iterable[_Counts]) -> Shares:
        """These shares once `claimed` is held too."""
        orgs, hosts = Counter(self.held_org), Counter(self.held_host)
        for message in claimed:
            if message.organization_id is not None:
                orgs[message.organization_id] += 1
            hosts[host_of(message.url)] += 1
        return Shares(self.org_max, self.host_max, orgs, hosts)

    def filled(self, claimed: Sequence[Claimed]) -> tuple[set[str], set[str]]:
        """The organizations and hosts that hold their share once `claimed` is added: a
        claim may have left due messages of theirs behind.
        """
        held = self.holding(claimed)
        return set(held.full_orgs()), set(held.full_hosts())


#: A job's callback, to the URL its organization gave (alerts and step events go to URLs
#: the operator chose, and count by host only).
_TENANT_CALLBACK = and_(
    jobs.c.id == outbox.c.job_id, outbox.c.event_type.like(literal_column("'job.%'"))
)
#: Written into the statement, not bound: a prepared statement's generic plan can then use
#: the partial index of due messages (`state = $1` cannot be proved to match it).
_IS_PENDING = outbox.c.state == literal_column(f"'{PENDING}'")
#: A message's document, read only for the messages with no body (written before bodies
#: were kept). Read with the candidates: in RETURNING, SQLite 3.40 sees the added column
#: as never NULL.
_DOCUMENT = case((outbox.c.body.is_(None), outbox.c.payload)).label("document")
#: Due rows read per message a claim may take: room to pass over rows whose organization or
#: host fills up within this claim, whose shares were not full when it began.
_CANDIDATES_PER_CLAIM = 4


class _Candidate(NamedTuple):
    """A due message a claim may take."""

    id: int
    url: str
    organization_id: str | None
    document: Any


class _Counts(Protocol):
    """What a message counts against: its organization and its URL's host."""

    @property
    def id(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def organization_id(self) -> str | None: ...


_Held = TypeVar("_Held", bound=_Counts)
#: Organizations and hosts whose shares are full.
_Full = tuple[tuple[str, ...], tuple[str, ...]]

#: A message due at `b_now` and held by no lease.
_IS_DUE = (
    _IS_PENDING,
    outbox.c.next_attempt_at <= bindparam("b_now"),
    or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < bindparam("b_now")),
)
_DUE: Select[Any] = (
    select(outbox.c.id, outbox.c.url, jobs.c.organization_id, _DOCUMENT)
    .select_from(outbox.outerjoin(jobs, _TENANT_CALLBACK))
    .where(*_IS_DUE)
    .order_by(outbox.c.next_attempt_at, outbox.c.id)
    .with_for_update(skip_locked=True, of=outbox)
)
#: The oldest due messages, when no organization or host is passed over (run on the driver).
_OLDEST_DUE = _DUE.limit(bindparam("b_limit")).offset(bindparam("b_offset"))
#: What a lease reads back of each message: the fields of its `Claimed` up to its lease.
_LEASED_FIELDS = (
    outbox.c.id,
    outbox.c.webhook_id,
    outbox.c.job_id,
    outbox.c.event_type,
    outbox.c.url,
    outbox.c.body,
    outbox.c.attempts,
    outbox.c.trace_context,
)
#: Messages leased by one statement, run on the driver: the ids of a claim go in chunks of
#: this many, the last one padded with NULL (which matches no row).
_LEASE_CHUNK = 64
_LEASE = (
    update(outbox)
    .where(outbox.c.id.in_([bindparam(f"b_id{n}", type_=Integer) for n in range(_LEASE_CHUNK)]))
    .values(locked_until=bindparam("b_lease", type_=UTCDateTime()))
    .returning(*_LEASED_FIELDS)
)


#: The leased row, as the subqueries of a RETURNING name it: SQLite's compiler writes the
#: columns there unqualified, which inside a subquery would name the subquery's own.
_LEASED_ID: ColumnElement[Any] = literal_column("outbox.id")
_LEASED_JOB: ColumnElement[Any] = literal_column("outbox.job_id")
_LEASED_EVENT: ColumnElement[Any] = literal_column("outbox.event_type")
#: The organization a leased message counts against (see `_TENANT_CALLBACK`). Its job is
#: found by the key's index only with the id cast: SQLite 3.40 gives a RETURNING's columns
#: no type, and compares them to a text column only by scanning.
_LEASED_ORGANIZATION = (
    select(jobs.c.organization_id)
    .where(
        jobs.c.id == cast(_LEASED_JOB, jobs.c.id.type),
        _LEASED_EVENT.like(literal_column("'job.%'")),
    )
    .scalar_subquery()
)
#: A leased message's document when it has no body, by a subquery of its own: in a
#: RETURNING, SQLite 3.40 sees the added `body` column as never NULL.
_STORED = outbox.alias("stored")
_LEASED_DOCUMENT = (
    select(_STORED.c.payload)
    .where(_STORED.c.id == _LEASED_ID, _STORED.c.body.is_(None))
    .scalar_subquery()
)
#: The oldest `b_limit` due messages leased by one statement, each read back whole (run on
#: the driver; the rows come in any order).
_LEASE_OLDEST = (
    update(outbox)
    .where(
        outbox.c.id.in_(
            select(outbox.c.id)
            .where(*_IS_DUE)
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(bindparam("b_limit"))
            .offset(bindparam("b_offset"))
            .with_for_update(skip_locked=True)
        )
    )
    .values(locked_until=bindparam("b_lease", type_=UTCDateTime()))
    .returning(*_LEASED_FIELDS, _LEASED_ORGANIZATION, _LEASED_DOCUMENT)
)

#: Leased messages let go again (due as they were: a lease is kept only while it runs).
_LET_GO = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(locked_until=None)
)


def claim_due(
    connection: Connection,
    now: datetime,
    lease_until: datetime,
    limit: int,
    shares: Shares | None = None,
) -> list[Claimed]:
    """Claim up to `limit` due messages until `lease_until`, oldest first; rows another
    worker holds are skipped, and a lease that ran out (a worker died) makes its message due
    again. With `shares`, organizations and hosts that hold their share are passed over, so
    the messages of the others are claimed even behind a slow tenant's backlog.

    While the claim fits in every share held already, the oldest are leased and read back
    by one statement; those that would overfill a share held by none (the last written
    first) are let go again, and the rest of the claim is read past the shares they filled.
    """
    if shares is not None and not shares.fits(limit):
        return _claim_within(connection, now, lease_until, limit, shares)
    params = {"b_now": now, "b_limit": limit, "b_offset": 0, "b_lease": lease_until}
    leased = prepared.returned(connection, _LEASE_OLDEST, params)
    read = len(_LEASED_FIELDS)
    claimed = [Claimed._make((*row[:read], lease_until, *row[read:])) for row in leased]
    claimed.sort(key=_by_id)
    if shares is None:
        return claimed
    kept = list(_pick(claimed, limit, shares).values())
    if len(kept) == len(claimed):
        return claimed
    # A share held by none filled within the claim: what overfills it is let go.
    let_go = {message.id for message in claimed}.difference(message.id for message in kept)
    connection.execute(_LET_GO, {"b_ids": sorted(let_go)})
    rest = _claim_within(connection, now, lease_until, limit - len(kept), shares.holding(kept))
    return sorted([*kept, *rest], key=_by_id)


def _claim_within(
    connection: Connection, now: datetime, lease_until: datetime, limit: int, shares: Shares
) -> list[Claimed]:
    """`claim_due` when a share may fill: due messages read past the full shares, then
    leased by id.
    """
    taken = _pick_due(connection, now, limit, shares)
    claimed: list[Claimed] = []
    ids = list(taken)
    for start in range(0, len(ids), _LEASE_CHUNK):
        chunk = ids[start : start + _LEASE_CHUNK]
        lease: dict[str, Any] = {f"b_id{n}": None for n in range(len(chunk), _LEASE_CHUNK)}
        lease.update({f"b_id{n}": id_ for n, id_ in enumerate(chunk)}, b_lease=lease_until)
        for row in prepared.returned(connection, _LEASE, lease):
            candidate = taken[row[0]]
            fields = (*row, lease_until, candidate.organization_id, candidate.document)
            claimed.append(Claimed._make(fields))
    return sorted(claimed, key=_by_id)


def _by_id(message: Claimed) -> int:
    return message.id


@functools.lru_cache(maxsize=4096)
def host_of(url: str) -> str:
    """The host (and port) a message goes to: what a slow receiver is counted by."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return url


@functools.lru_cache(maxsize=256)
def _passing_over(full_orgs: tuple[str, ...], full_hosts: tuple[str, ...]) -> Select[Any]:
    """The due messages but those of organizations and hosts that hold their share (made
    once for each, so that SQLAlchemy finds it compiled).
    """
    due = _past(_DUE, outbox.c.url, jobs.c.organization_id, full_orgs, full_hosts)
    return due.limit(bindparam("b_limit")).offset(bindparam("b_offset"))


@functools.lru_cache(maxsize=256)
def _rest_of_window(full: _Full, filled: _Full) -> Select[Any]:
    """The due messages from `b_offset` up to `b_limit` of them (read past the shares `full`
    as the claim began), but those of the shares the oldest filled since (`filled`): what a
    claim may still take of the rows after those it read first, filtered where the rows are,
    so that a share the oldest filled sends no row back for each of its messages.
    """
    due = _DUE.add_columns(outbox.c.next_attempt_at.label("due_at"))
    window = _past(due, outbox.c.url, jobs.c.organization_id, *full)
    rows = window.limit(bindparam("b_limit")).offset(bindparam("b_offset")).subquery("window")
    takable = select(rows.c.id, rows.c.url, rows.c.organization_id, rows.c.document)
    return _past(takable, rows.c.url, rows.c.organization_id, *filled).order_by(
        rows.c.due_at, rows.c.id
    )


def _past(
    due: Select[Any],
    url: ColumnElement[str],
    organization: ColumnElement[str | None],
    full_orgs: tuple[str, ...],
    full_hosts: tuple[str, ...],
) -> Select[Any]:
    """`due` but the rows of the organizations and hosts given."""
    if full_orgs:
        due = due.where(or_(organization.is_(None), organization.not_in(full_orgs)))
    for host in full_hosts:
        due = due.where(not_(_goes_to(url, host)))
    return due


def _goes_to(url: ColumnElement[str], host: str) -> ColumnElement[bool]:
    """Whether a message's `url` is on `host` (as `host_of` reads it, in any letter case)."""
    lowered = func.lower(url)
    starts = [f"{scheme}://{host}" for scheme in ("http", "https")]
    return or_(
        lowered.in_(starts),
        *(lowered.startswith(start + end, autoescape=True) for start in starts for end in "/?#"),
    )


def _pick_due(
    connection: Connection, now: datetime, limit: int, shares: Shares
) -> dict[int, _Candidate]:
    """The due messages a claim takes within `shares`: the oldest `limit` first, and, only
    if some were passed over for a share they filled, those of the next ones up to
    `_CANDIDATES_PER_CLAIM` times `limit` in all that are not of a share full by then.
    """
    full = (tuple(shares.full_orgs()), tuple(shares.full_hosts()))
    params: dict[str, Any] = {"b_now": now, "b_offset": 0, "b_limit": limit}
    if full == ((), ()):
        found = prepared.rows(connection, _OLDEST_DUE, params)
    else:
        found = [tuple(row) for row in connection.execute(_passing_over(*full), params)]
    oldest = [_Candidate._make(row) for row in found]
    taken = _pick(oldest, limit, shares)
    if len(taken) == limit or len(found) < limit or not shares.may_fill(limit):
        return taken
    held = shares.holding(taken.values())
    filled = (_since(held.full_orgs(), full[0]), _since(held.full_hosts(), full[1]))
    params.update(b_offset=limit, b_limit=limit * (_CANDIDATES_PER_CLAIM - 1))
    candidates = {row.id: row for row in oldest}
    for row in map(_Candidate._make, connection.execute(_rest_of_window(full, filled), params)):
        candidates.setdefault(row.id, row)  # a row read twice (its place moved) counts once
    return _pick(list(candidates.values()), limit, shares)


def _since(now_full: list[str], full: tuple[str, ...]) -> tuple[str, ...]:
    """The shares full now that were not at first (those passed over already)."""
    return tuple(key for key in now_full if key not in full)


def _pick(candidates: Iterable[_Held], limit: int, shares: Shares) -> dict[int, _Held]:
    """The candidates a claim takes, oldest first, within each one's shares, by id."""
    held_org, held_host = Counter(shares.held_org), Counter(shares.held_host)
    taken: dict[int, _Held] = {}
    for row in candidates:
        org, host = row.organization_id, host_of(row.url)
        if held_host[host] >= shares.host_max:
            continue
        if org is not None:
            if held_org[org] >= shares.org_max:
                continue
            held_org[org] += 1
        held_host[host] += 1
        taken[row.id] = row
        if len(taken) == limit:
            break
    return taken
