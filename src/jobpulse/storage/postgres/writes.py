"""PostgreSQL's writes of new and changed jobs: one statement whatever their number.

The values go as one array a column, `unnest`ed into the rows an INSERT … SELECT stores or an
UPDATE … FROM joins the jobs with, and data-modifying CTEs of the same statement append a
delta for each new job and each job whose counted fields changed (their old values are in the
arrays too, the new ones come back from the UPDATE) and the history rows of the batch (their
values arrays too). Each statement is a round trip here, so a row trigger's per-row PL/pgSQL,
or a statement a row, would cost more than the arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, String, any_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from jobpulse.domain import JobEvent
from jobpulse.storage import prepared
from jobpulse.storage.changes import (
    FIXED,
    INSERTED,
    UPDATE_GUARDED,
    WRITTEN,
    JobWrite,
    column_values,
    guarded,
    written,
)
from jobpulse.storage.repository import (
    EVENT_FIELDS,
    LOCK_ONE,
    SELECT_JOB,
    event_row,
    insert_events,
)
from jobpulse.storage.rollups import CHANGING
from jobpulse.storage.tables import job_events, job_rollup_deltas, jobs

#: What a written job's statement returns for its delta: its counted fields.
_RETURNED = tuple(jobs.c[name] for name in (*FIXED, *CHANGING))
#: Every job of a batch, locked in id order (one array parameter, one statement).
_LOCK_ALL = (
    SELECT_JOB.where(jobs.c.id == any_(bindparam("b_ids", type_=ARRAY(String))))
    .order_by(jobs.c.id)
    .with_for_update()
)


def _bound(names: Sequence[str]) -> dict[str, Any]:
    """Column values from typed parameters `v_<name>` (each cast)."""
    return {name: bindparam(f"v_{name}", type_=jobs.c[name].type) for name in names}


def _given(names: Sequence[str], types: Mapping[str, str], table: Any = jobs) -> Any:
    """Rows of columns `names` from one array parameter each (`a_<name>`, `e_<name>` for
    the history's), typed as the `table` column `types` names (its own name's if none).
    """
    arrays = []
    prefix = "a" if table is jobs else "e"
    for name in names:
        item = table.c[types.get(name, name)].type
        array = ARRAY(JSONB() if name == "metadata" else item)
        arrays.append(bindparam(f"{prefix}_{name}", type_=array))
    return func.unnest(*arrays).table_valued(*names).render_derived(name=f"given_{prefix}")


def _history() -> Any:
    """A data-modifying CTE inserting history rows from arrays (`e_<field>`)."""
    given = _given(EVENT_FIELDS, {}, job_events)
    rows = select(*(given.c[name] for name in EVENT_FIELDS))
    return insert(job_events).from_select(EVENT_FIELDS, rows).cte("history")


def _logged(statement: Any) -> Any:
    """`statement`, and the history rows of its batch inserted with it."""
    return statement.add_cte(_history())


def _events(events: Sequence[JobEvent]) -> dict[str, list[Any]]:
    rows = [event_row(event) for event in events]
    return {f"e_{name}": [row[name] for row in rows] for name in EVENT_FIELDS}


def _with_deltas(written: Any, old: bool) -> Any:
    """A count of the rows `written` (a data-modifying CTE that returns the counted fields,
    and `old_` ones when `old`) that also appends their rollup deltas.
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
    return select(func.count()).select_from(written).add_cte(deltas)


def _update_all() -> Any:
    """Every changed job in one UPDATE, each guarded by the status its plan expected, with
    the deltas of those whose counted fields changed; it selects how many jobs it updated.
    """
    olds = [f"old_{name}" for name in CHANGING]
    given = _given(
        ("id", "expected", *WRITTEN, *olds),
        {"expected": "status"} | dict(zip(olds, CHANGING, strict=True)),
    )
    updated = (
        update(jobs)
        .where(jobs.c.id == given.c.id, jobs.c.status == given.c.expected)
        .values({name: given.c[name] for name in WRITTEN})
        .returning(*_RETURNED, *(given.c[name] for name in olds))
        .cte("updated")
    )
    return _with_deltas(updated, old=True)


@functools.cache
def _update_one(keys: tuple[str, ...], logged: bool) -> Any:
    """One job's UPDATE of columns `keys` (`v_<key>`), guarded by the status its plan
    expected, with its delta (its old counted fields are parameters too), and with `logged`
    its history rows.
    """
    updated = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_expected"))
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
    statement = _with_deltas(updated, old=True)
    return _logged(statement) if logged else statement


def _insert_all() -> Any:
    """New jobs in one INSERT, with their deltas; it selects how many."""
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
#: The same with their batch's history rows.
_UPDATE_ALL_LOGGED = _logged(_UPDATE_ALL)
_INSERT_ALL_LOGGED = _logged(_INSERT_ALL)
#: One new job (`v_<column>`), with its delta.
_INSERT_ONE = _with_deltas(
    insert(jobs).values(_bound(INSERTED)).returning(*_RETURNED).cte("inserted"),
    old=False,
)


def lock_jobs(connection: Connection, ids: Sequence[str]) -> list[Sequence[Any]]:
    """The jobs of `ids` that exist, locked FOR UPDATE in id order."""
    if len(ids) == 1:
        row = prepared.first(connection, LOCK_ONE, {"b_id": ids[0]})
        return [] if row is None else [row]
    return list(prepared.rows(connection, _LOCK_ALL, {"b_ids": list(ids)}))


def update_jobs(
    connection: Connection, writes: Sequence[JobWrite], events: Sequence[JobEvent]
) -> int:
    """Write each job's change where it has the status its plan expected, with its rollup
    delta, and the history rows `events`, in one statement; how many jobs were written. One
    job writes only its changed columns.
    """
    if not writes:
        insert_events(connection, events)
        return 0
    if len(writes) == 1:
        return _update_one_job(connection, writes[0], events)
    rows = [written(write.changed) for write in writes]
    params: dict[str, list[Any]] = {
        "a_id": [write.locked.id for write in writes],
        "a_expected": [write.expected for write in writes],
    }
    params |= {f"a_{name}": [row[name] for row in rows] for name in WRITTEN}
    params |= {
        f"a_old_{name}": [getattr(write.locked, name) for write in writes] for name in CHANGING
    }
    if events:
        params |= _events(events)
    found = prepared.first(connection, _UPDATE_ALL_LOGGED if events else _UPDATE_ALL, params)
    return 0 if found is None else int(found[0])


def _update_one_job(connection: Connection, write: JobWrite, events: Sequence[JobEvent]) -> int:
    if not write.counted_changed():  # no delta to append
        written = prepared.write(connection, UPDATE_GUARDED, guarded(write))
        insert_events(connection, events)
        return written
    columns = column_values(write.values)
    params = {f"v_{name}": value for name, value in columns.items()}
    params |= {"b_id": write.locked.id, "b_expected": write.expected}
    params |= {f"old_{name}": getattr(write.locked, name) for name in CHANGING}
    statement = _update_one(tuple(sorted(columns)), bool(events))
    if events:
        params |= _events(events)
    found = prepared.first(connection, statement, params)
    return 0 if found is None else int(found[0])


def insert_jobs(
    connection: Connection, rows: Sequence[Mapping[str, Any]], events: Sequence[JobEvent]
) -> None:
    """Store new jobs' rows with their deltas, and the history rows `events`, in one
    statement.
    """
    params = {f"a_{name}": [row[name] for row in rows] for name in INSERTED}
    if events:
        params |= _events(events)
    prepared.first(connection, _INSERT_ALL_LOGGED if events else _INSERT_ALL, params)


def insert_job(connection: Connection, row: Mapping[str, Any]) -> None:
    """Store one new job's row with its delta (its errors are SQLAlchemy's: see prepared)."""
    prepared.first(connection, _INSERT_ONE, {f"v_{name}": row[name] for name in INSERTED})
