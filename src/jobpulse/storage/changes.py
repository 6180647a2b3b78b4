"""New and changed jobs written, with their rollup deltas, in as few statements as the
database allows.

On PostgreSQL the rows are one statement whatever their number: the values go as one array
a column, `unnest`ed into the rows an INSERT … SELECT stores or an UPDATE … FROM joins the
jobs with, and a data-modifying CTE of the same statement appends a delta for each new job
and each job whose counted fields changed (their old values are in the arrays too, the new
ones come back from the UPDATE). A row trigger did that before, in PL/pgSQL, for each row of
a one-statement-per-row batch: on the raw driver batches of 16 transitions ran at 0.85 of
the rate without it, and as one statement with the deltas at 1.30.

SQLite's writer inserts new jobs' deltas with one executemany (0.98 of the rate without
deltas, where an insert trigger ran at 0.87); there a trigger writes an update's delta
(migration 0009), at 0.95, where one more statement from Python cost 0.86.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from jobpulse.domain import Job
from jobpulse.storage import prepared
from jobpulse.storage.rollups import CHANGING
from jobpulse.storage.tables import job_rollup_deltas, jobs

#: A job's fields, in order: its columns, source_id left out.
JOB_FIELDS = tuple(field.name for field in fields(Job))
#: Every column a change may write: all of a job's but its identity and owner.
WRITTEN = tuple(
    name
    for name in (*JOB_FIELDS, "source_id")
    if name not in ("id", "organization_id", "user_id", "created_at")
)
#: The fields of a delta its job never changes.
_FIXED = ("organization_id", "job_type", "created_at")

#: One job's changed columns (those of the statement's parameters), guarded by the status it
#: was locked in: databases but PostgreSQL, where a trigger writes the delta.
_UPDATE_GUARDED = update(jobs).where(
    jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_locked")
)


#: Every column of a new job's row.
INSERTED = (*JOB_FIELDS, "source_id", "idempotency_key")
#: What a written job's statement returns for its delta: its counted fields.
_RETURNED = tuple(jobs.c[name] for name in (*_FIXED, *CHANGING))


def _bound(names: Sequence[str]) -> dict[str, Any]:
    """Column values from typed parameters `v_<name>` (PostgreSQL casts each)."""
    return {name: bindparam(f"v_{name}", type_=jobs.c[name].type) for name in names}


def _given(names: Sequence[str], types: Mapping[str, str]) -> Any:
    """PostgreSQL: rows of columns `names` from one array parameter each (`a_<name>`), typed
    as the jobs column `types` names (its own name's if none).
    """
    arrays = []
    for name in names:
        item = jobs.c[types.get(name, name)].type
        array = ARRAY(JSONB() if name == "metadata" else item)
        arrays.append(bindparam(f"a_{name}", type_=array))
    return func.unnest(*arrays).table_valued(*names).render_derived(name="given")


def _with_deltas(written: Any, old: bool) -> Any:
    """PostgreSQL: a count of the rows `written` (a data-modifying CTE that returns the
    counted fields, and `old_` ones when `old`) that also appends their rollup deltas.
    """
    w = written.c
    new = [w[name] for name in (*_FIXED, *CHANGING)]
    columns = [*_FIXED, *(f"new_{name}" for name in CHANGING)]
    counted = select(*new)
    if old:
        columns += [f"old_{name}" for name in CHANGING]
        counted = counted.add_columns(*(w[f"old_{name}"] for name in CHANGING))
        changed = (w[f"old_{name}"].is_distinct_from(w[name]) for name in CHANGING)
        counted = counted.where(or_(*changed))
    deltas = insert(job_rollup_deltas).from_select(columns, counted).cte("deltas")
    return select(func.count()).select_from(written).add_cte(deltas)


def _update_all() -> Any:
    """PostgreSQL: every changed job in one UPDATE, with the deltas of those whose counted
    fields changed; it selects how many jobs it updated.
    """
    olds = [f"old_{name}" for name in CHANGING]
    given = _given(
        ("id", "locked", *WRITTEN, *olds),
        {"locked": "status"} | dict(zip(olds, CHANGING, strict=True)),
    )
    updated = (
        update(jobs)
        .where(jobs.c.id == given.c.id, jobs.c.status == given.c.locked)
        .values({name: given.c[name] for name in WRITTEN})
        .returning(
            *_RETURNED,
            *(given.c[name] for name in olds),
        )
        .cte("updated")
    )
    return _with_deltas(updated, old=True)


@functools.cache
def _update_one(keys: tuple[str, ...]) -> Any:
    """PostgreSQL: one job's UPDATE of columns `keys` (`v_<key>`), guarded by its locked
    status, with its delta (its old counted fields are parameters too).
    """
    updated = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_locked"))
        .values(_bound(keys))
        .returning(
            *_RETURNED,
            *(
                bindparam(f"old_{name}", type_=jobs.c[name].type).label(f"old_{name}")
                for name in CHANGING
            ),
        )
        .cte("updated")
    )
    return _with_deltas(updated, old=True)


def _insert_all() -> Any:
    """PostgreSQL: new jobs in one INSERT, with their deltas; it selects how many."""
    given = _given(INSERTED, {})
    inserted = (
        insert(jobs)
        .from_select(INSERTED, select(*(given.c[name] for name in INSERTED)))
        .returning(*_RETURNED)
        .cte("inserted")
    )
    return _with_deltas(inserted, old=False)


_UPDATE_ALL = _update_all()
_INSERT_ALL = _insert_all()
#: PostgreSQL: one new job (`v_<column>`), with its delta.
_INSERT_ONE = _with_deltas(
    insert(jobs).values(_bound(INSERTED)).returning(*_RETURNED).cte("inserted"),
    old=False,
)
_INSERT = insert(jobs)
_INSERT_DELTA = insert(job_rollup_deltas)


def column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Job field values as column values, keeping the source_id column in step."""
    columns = dict(values)
    if "metadata" in values:
        source = values["metadata"].get("source_id")
        columns["source_id"] = None if source is None else str(source)
    return columns


def written(job: Job) -> dict[str, Any]:
    """The values of a job's written columns."""
    values = column_values({name: getattr(job, name) for name in JOB_FIELDS})
    return {name: values[name] for name in WRITTEN}


def update_job(connection: Connection, locked: Job, changed: Job, values: Mapping[str, Any]) -> int:
    """Write one job's change (`values`, the fields that make `changed` of `locked`) where it
    still has the locked status, with its rollup delta; 1 if it did, 0 if not.
    """
    columns = column_values(values)
    guard = {"b_id": locked.id, "b_locked": locked.status}
    if connection.dialect.name != "postgresql" or all(
        getattr(locked, name) == getattr(changed, name) for name in CHANGING
    ):  # nothing counted changed, or a trigger writes the delta
        return prepared.write(connection, _UPDATE_GUARDED, columns | guard)
    params = {f"v_{name}": value for name, value in columns.items()} | guard
    params |= {f"old_{name}": getattr(locked, name) for name in CHANGING}
    found = prepared.first(connection, _update_one(tuple(sorted(columns))), params)
    return 0 if found is None else int(found[0])


def update_jobs(connection: Connection, changes: Sequence[tuple[Job, Job]]) -> int:
    """Write each (locked, changed) job's new values where it still has the locked status,
    with its rollup delta; how many jobs were written.
    """
    if not changes:
        return 0
    if connection.dialect.name != "postgresql":
        return sum(
            update_job(connection, locked, changed, written(changed)) for locked, changed in changes
        )
    rows = [written(changed) for _, changed in changes]
    params: dict[str, list[Any]] = {
        "a_id": [locked.id for locked, _ in changes],
        "a_locked": [locked.status for locked, _ in changes],
    }
    params |= {f"a_{name}": [row[name] for row in rows] for name in WRITTEN}
    params |= {
        f"a_old_{name}": [getattr(locked, name) for locked, _ in changes] for name in CHANGING
    }
    found = prepared.first(connection, _UPDATE_ALL, params)
    return 0 if found is None else int(found[0])


def insert_jobs(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store new jobs' rows (every column of `INSERTED`), with their rollup deltas."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        params = {f"a_{name}": [row[name] for row in rows] for name in INSERTED}
        prepared.first(connection, _INSERT_ALL, params)
        return
    prepared.write_many(connection, _INSERT, rows)
    prepared.write_many(connection, _INSERT_DELTA, [_created(row) for row in rows])


def insert_row(connection: Connection, row: Mapping[str, Any]) -> None:
    """Store one new job's row, with its rollup delta; SQLAlchemy's IntegrityError if a key
    of it is taken.
    """
    if connection.dialect.name == "postgresql":  # its errors are SQLAlchemy's (see prepared)
        prepared.first(connection, _INSERT_ONE, {f"v_{name}": row[name] for name in INSERTED})
        return
    connection.execute(_INSERT, row)
    prepared.write(connection, _INSERT_DELTA, _created(row))


def _created(row: Mapping[str, Any]) -> dict[str, Any]:
    """The rollup delta of a new job's row: its counted fields, none old."""
    return {name: row[name] for name in _FIXED} | {f"new_{name}": row[name] for name in CHANGING}
