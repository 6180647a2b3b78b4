"""PostgreSQL's writes of new and changed jobs: one statement whatever their number.

The rows go as one JSON text a table (see recordsets.py), typed rows again for the
INSERT … SELECT that stores them or the UPDATE … FROM that joins the jobs with them, and
data-modifying CTEs of the same statement append a delta for each new job and each job whose
counted fields changed (their old values are in the rows too, the new ones come back from the
UPDATE), the history rows and the outbox messages of the batch (their rows' text too). Each
statement is a round trip here, so a row trigger's per-row PL/pgSQL, or a statement a row,
would cost more.

Changed jobs are read without a lock and written where each is still the row version it was
read at (its `xmin`, the transaction that wrote it): the one statement commits on its own,
with no BEGIN, lock and COMMIT round trips around it, and a job another writer changed
meanwhile is left as that writer made it, for its change to be planned again (see
storage/transitions.py). The statement never waits for a job another transaction holds: it
leaves that job out too, and writers that wait lock jobs in id order, so no two of them ever
deadlock.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    all_,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY

from jobpulse.domain import JobEvent
from jobpulse.storage import prepared
from jobpulse.storage.changes import (
    FIXED,
    INSERTED,
    JobWrite,
    Queued,
    column_values,
    written,
)
from jobpulse.storage.outbox import MESSAGE_FIELDS, insert_messages, message_rows
from jobpulse.storage.postgres.recordsets import recordset
from jobpulse.storage.repository import (
    EVENT_FIELDS,
    LOCK_ONE,
    SELECT_JOB,
    event_row,
    insert_events,
)
from jobpulse.storage.rollups import CHANGING
from jobpulse.storage.tables import job_events, job_rollup_deltas, jobs, outbox

#: What a written job's statement returns for its delta: its counted fields, and its id.
_RETURNED = tuple(jobs.c[name] for name in ("id", *FIXED, *CHANGING))
#: Every job of a batch, locked in id order (one array parameter, one statement).
_LOCK_ALL = (
    SELECT_JOB.where(jobs.c.id == any_(bindparam("b_ids", type_=ARRAY(String))))
    .order_by(jobs.c.id)
    .with_for_update()
)
#: The jobs a batch writes that no other transaction holds, locked (the others it skips).
#: Writers that lock several jobs and wait lock them in id order (`_LOCK_ALL`), but the rows
#: of an UPDATE … FROM come in whatever order its plan joins them: one that waited for a job
#: while holding others could deadlock with them, for a second each (deadlock_timeout).
#: Their ids are gathered in an array (an InitPlan), so the lock runs once: as a subquery
#: joined to the UPDATE, the plan may run it again for each of the batch's rows.
_LOCKABLE = jobs.alias("lockable")
_LOCKED_NOW = any_(
    func.array(
        select(_LOCKABLE.c.id)
        .where(_LOCKABLE.c.id == any_(bindparam("b_writing", type_=ARRAY(String))))
        .with_for_update(skip_locked=True)
        .scalar_subquery(),
        type_=ARRAY(String),
    )
)
#: A job row's version: the id of the transaction that wrote it, as a number.
_VERSION = literal_column("jobs.xmin::text::bigint", BigInteger)
_READ_ALL = (
    SELECT_JOB.add_columns(_VERSION)
    .where(jobs.c.id == any_(bindparam("b_ids", type_=ARRAY(String))))
    .order_by(jobs.c.id)
)
_READ_ONE = SELECT_JOB.add_columns(_VERSION).where(jobs.c.id == bindparam("b_id"))
#: Every job of a batch with its version (one job, and many), by whether it is locked.
_READS = {
    False: (_READ_ONE, _READ_ALL),
    True: (_READ_ONE.with_for_update(), _READ_ALL.with_for_update()),
}


def _bound(names: Sequence[str]) -> dict[str, Any]:
    """Column values from typed parameters `v_<name>` (each cast)."""
    return {name: bindparam(f"v_{name}", type_=jobs.c[name].type) for name in names}


#: The rows parameter's name of each table (`a_rows`; `e_rows` for the history's, `m_rows`
#: for the outbox's).
_PREFIXES = {jobs: "a", job_events: "e", outbox: "m"}


def _given(names: Sequence[str], types: Mapping[str, Any], table: Any = jobs) -> Any:
    """Rows of columns `names` from one parameter of rows (see `_PREFIXES`), each typed as
    `types` says: the type, or the name of the `table` column, it gives (the column of its
    own name if none).
    """
    prefix = _PREFIXES[table]
    columns = []
    for name in names:
        item = types.get(name, name)
        columns.append((name, table.c[item].type if isinstance(item, str) else item))
    return recordset(f"{prefix}_rows", columns, f"given_{prefix}")


def _appended(table: Any, names: Sequence[str], job: str, updated: Any = None) -> Any:
    """A data-modifying CTE inserting `table`'s rows (columns `names`) from arrays; with
    `updated` (the CTE of an UPDATE), only the rows whose `job` (an array of those) it wrote,
    or the statement does not write (`b_writing`): a job left unwritten keeps no history or
    message of the change.
    """
    given = _given((*names, job) if job not in names else names, {job: String()}, table)
    rows = select(*(given.c[name] for name in names))
    if updated is not None:
        writing = bindparam("b_writing", type_=ARRAY(String))
        of = given.c[job]
        rows = rows.where(or_(of.in_(select(updated.c.id)), of != all_(writing)))
    return insert(table).from_select(names, rows).cte(f"appended_{_PREFIXES[table]}")


def _with_rows(statement: Any, logged: bool, queued: bool, updated: Any = None) -> Any:
    """`statement`, and with `logged` the history rows, with `queued` the outbox messages of
    its batch inserted with it (those of the jobs `updated` wrote, see `_appended`).
    """
    if logged:
        history = _appended(job_events, EVENT_FIELDS, "job_id", updated)
        statement = statement.add_cte(history)
    if queued:
        statement = statement.add_cte(_appended(outbox, MESSAGE_FIELDS, "change_of", updated))
    return statement


def _rows(events: Sequence[JobEvent], queued: Sequence[Queued] = ()) -> dict[str, list[Any]]:
    """The parameters of the history rows `events` and the outbox rows `queued`."""
    params: dict[str, list[Any]] = {}
    if events:
        params["e_rows"] = [event_row(event) for event in events]
    if queued:
        rows = message_rows([message for _, message in queued])
        for row, (job_id, _) in zip(rows, queued, strict=True):
            row["change_of"] = job_id
        params["m_rows"] = rows
    return params


def _with_deltas(written: Any, old: bool) -> Any:
    """The ids of the rows `written` (a data-modifying CTE that returns the ids, versions
    and counted fields, and `old_` ones when `old`), with their versions, which also appends
    their rollup deltas.
    """
    w = written.c
    new = [w[name] for name in (*FIXED, *CHANGING)]
    columns = [*FIXED, *(f"new_{name}" for name in CHANGING)]
    counted = select(*new)
    if old:
        columns += [f"old_{name}" for name in CHANGING]
        counted = counted.add_columns(*(w[f"old_{name}"] for name in CHANGING))
        changed = (w[f"old_{name}"].is_distinct_from(w[name]) for name in CHANGING)
        counted = counted.where(or_(*changed))
    deltas = insert(job_rollup_deltas).from_select(columns, counted).cte("deltas")
    return select(w.id, w.version).add_cte(deltas)


@functools.cache
def _update_all(keys: tuple[str, ...], logged: bool, queued: bool) -> Any:
    """Every changed job in one UPDATE of columns `keys` (from `a_rows`), each where it is still
    the version it was read at, with the deltas of those whose counted fields changed, and
    with `logged` and `queued` the batch's history and outbox rows; it selects the ids of the
    jobs it updated.
    """
    olds = [f"old_{name}" for name in CHANGING]
    given = _given(
        ("id", "version", *keys, *olds),
        {"version": BigInteger()} | dict(zip(olds, CHANGING, strict=True)),
    )
    updated = (
        update(jobs)
        .where(jobs.c.id == given.c.id, given.c.version == _VERSION, jobs.c.id == _LOCKED_NOW)
        .values({name: given.c[name] for name in keys})
        .returning(*_RETURNED, _VERSION.label("version"), *(given.c[name] for name in olds))
        .cte("updated")
    )
    return _with_rows(_with_deltas(updated, old=True), logged, queued, updated)


@functools.cache
def _update_one(keys: tuple[str, ...], logged: bool, queued: bool) -> Any:
    """One job's UPDATE of columns `keys` (`v_<key>`) where it is still the version it was
    read at (`b_version`), with its delta (its old counted fields are parameters too), and
    with `logged` and `queued` its history and outbox rows.
    """
    updated = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), bindparam("b_version", BigInteger) == _VERSION)
        .values(_bound(keys))
        .returning(
            *_RETURNED,
            _VERSION.label("version"),
            *(
                bindparam(f"old_{name}", type_=jobs.c[name].type).label(f"old_{name}")
                for name in CHANGING
            ),
        )
        .cte("updated")
    )
    return _with_rows(_with_deltas(updated, old=True), logged, queued, updated)


@functools.cache
def _insert_all(names: tuple[str, ...], logged: bool) -> Any:
    """New jobs in one INSERT of columns `names` (from `a_rows`; the others NULL), with their
    deltas, and with `logged` the history rows of the batch; it selects their ids.

    With idempotency keys among the columns, a row whose key another writer stored since the
    batch looked its keys up is left out (with its history row), not an error that would
    undo the batch: the caller answers its request with that writer's job.
    """
    given = _given(names, {})
    rows = select(*(given.c[name] for name in names))
    keyed = "idempotency_key" in names
    inserting: Any
    if keyed:
        inserting = (
            postgresql.insert(jobs)
            .from_select(names, rows)
            .on_conflict_do_nothing(
                index_elements=[jobs.c.organization_id, jobs.c.user_id, jobs.c.idempotency_key]
            )
        )
    else:
        inserting = insert(jobs).from_select(names, rows)
    inserted = inserting.returning(*_RETURNED, _VERSION.label("version")).cte("inserted")
    stored = inserted if keyed else None
    return _with_rows(_with_deltas(inserted, old=False), logged, queued=False, updated=stored)


#: One new job (`v_<column>`), with its delta.
_INSERT_ONE = _with_deltas(
    insert(jobs)
    .values(_bound(INSERTED))
    .returning(*_RETURNED, _VERSION.label("version"))
    .cte("inserted"),
    old=False,
)


def lock_jobs(connection: Connection, ids: Sequence[str]) -> list[Sequence[Any]]:
    """The jobs of `ids` that exist, locked FOR UPDATE in id order."""
    if len(ids) == 1:
        row = prepared.first(connection, LOCK_ONE, {"b_id": ids[0]})
        return [] if row is None else [row]
    return list(prepared.rows(connection, _LOCK_ALL, {"b_ids": list(ids)}))


def read_jobs(connection: Connection, ids: Sequence[str], locked: bool) -> list[Sequence[Any]]:
    """The jobs of `ids` that exist, each with its version last, in id order; `locked` FOR
    UPDATE, or not.
    """
    one, many = _READS[locked]
    if len(ids) == 1:
        row = prepared.first(connection, one, {"b_id": ids[0]})
        return [] if row is None else [row]
    return list(prepared.rows(connection, many, {"b_ids": list(ids)}))


def update_jobs(
    connection: Connection,
    writes: Sequence[JobWrite],
    events: Sequence[JobEvent],
    messages: Sequence[Queued],
) -> dict[str, int]:
    """Write each job's change where the job is still the version it was read at, with its
    rollup delta, and the history rows `events` and outbox `messages` of the jobs written and
    of jobs no write names, in one statement; the jobs written, each with its new version.
    It writes the columns a change changed (in a batch, those any of its changes did).
    """
    if not writes:
        insert_events(connection, events)
        insert_messages(connection, [message for _, message in messages])
        return {}
    params: dict[str, Any] = _rows(events, messages)
    params["b_writing"] = [write.locked.id for write in writes]
    if len(writes) == 1:
        [write] = writes
        columns = column_values(write.values)
        params |= {f"v_{name}": value for name, value in columns.items()}
        params |= {"b_id": write.locked.id, "b_version": write.version}
        params |= {f"old_{name}": getattr(write.locked, name) for name in CHANGING}
        statement = _update_one(tuple(sorted(columns)), bool(events), bool(messages))
    else:  # the columns any of them changed, each job's own value where it did not
        keys = sorted({key for write in writes for key in column_values(write.values)})
        rows = []
        for write in writes:
            row = written(write.changed, keys)
            row["id"], row["version"] = write.locked.id, write.version
            row |= {f"old_{name}": getattr(write.locked, name) for name in CHANGING}
            rows.append(row)
        params["a_rows"] = rows
        statement = _update_all(tuple(keys), bool(events), bool(messages))
    return dict(prepared.rows(connection, statement, params))


def insert_jobs(
    connection: Connection, rows: Sequence[Mapping[str, Any]], events: Sequence[JobEvent]
) -> dict[str, int]:
    """Store new jobs' rows with their deltas, and the history rows `events`, in one
    statement (which leaves out the columns NULL in every row: the table has no defaults);
    the jobs stored, each with its row's version.
    """
    names = tuple(name for name in INSERTED if any(row[name] is not None for row in rows))
    params: dict[str, Any] = {"a_rows": rows} | _rows(events)
    if events and "idempotency_key" in names:  # the history of the rows left out goes too
        params["b_writing"] = [row["id"] for row in rows]
    return dict(prepared.rows(connection, _insert_all(names, bool(events)), params))


def insert_job(connection: Connection, row: Mapping[str, Any]) -> None:
    """Store one new job's row with its delta (its errors are SQLAlchemy's: see prepared)."""
    prepared.first(connection, _INSERT_ONE, {f"v_{name}": row[name] for name in INSERTED})
