"""PostgreSQL's record of delivery attempts: one statement whatever their number.

The attempts go as one JSON text (see recordsets.py), with their order, into the rows that
callback_attempts keeps; data-modifying CTEs of the same statement move each message on and
show each job its last attempt, from the last attempt of each in the batch (as a statement
a row, applied in order, would leave them). Each statement is a round trip and a few
hundred microseconds of the driver's work a row here; the text costs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Connection, insert, select
from sqlalchemy import update as update_
from sqlalchemy.dialects.postgresql import distinct_on

from jobpulse.storage import prepared
from jobpulse.storage.outbox import (
    ATTEMPT_COLUMNS,
    RECORDED_FIELDS,
    AttemptRow,
    is_job_callback,
    moved_on,
    shown_on_job,
)
from jobpulse.storage.postgres.recordsets import recordset
from jobpulse.storage.tables import callback_attempts, jobs, outbox


def _record_all() -> Any:
    columns: list[tuple[str, Any]] = [("n", BigInteger())]
    for name in RECORDED_FIELDS:
        if name == "outbox_id":
            columns.append((name, BigInteger()))
        elif name == "lease":
            columns.append((name, outbox.c.locked_until.type))
        else:
            columns.append((name, callback_attempts.c[name].type))
    given = select(recordset("a_rows", columns, "rows")).cte("given")
    g = given.c
    kept = (
        insert(callback_attempts)
        .from_select(ATTEMPT_COLUMNS, select(*(g[name] for name in ATTEMPT_COLUMNS)).order_by(g.n))
        .cte("kept")
    )
    last = (
        select(given)
        .ext(distinct_on(g.outbox_id))
        .order_by(g.outbox_id, g.n.desc())
        .subquery("last")
    )
    moved = (
        update_(outbox)
        .where(outbox.c.id == last.c.outbox_id, outbox.c.locked_until == last.c.lease)
        .values(moved_on(last))
        .cte("moved")
    )
    callbacks = (
        select(given)
        .where(is_job_callback(g.job_id, g.event_type))
        .ext(distinct_on(g.job_id))
        .order_by(g.job_id, g.n.desc())
        .subquery("shown")
    )
    return (
        update_(jobs)
        .where(jobs.c.id == callbacks.c.job_id)
        .values(shown_on_job(callbacks))
        .add_cte(kept)
        .add_cte(moved)
    )


_RECORD_ALL = _record_all()


def record_attempts(connection: Connection, rows: Sequence[AttemptRow]) -> None:
    """Keep the attempts, move their messages on and show them on their jobs, in one
    statement (see attempts.record_attempts).
    """
    given = [
        dict(zip(RECORDED_FIELDS, row, strict=True), n=number) for number, row in enumerate(rows, 1)
    ]
    prepared.write(connection, _RECORD_ALL, {"a_rows": given})
