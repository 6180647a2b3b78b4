"""PostgreSQL's record of delivery attempts: one statement whatever their number.

The attempts go as one array a column, `unnest`ed (with their order) into the rows that
callback_attempts keeps; data-modifying CTEs of the same statement move each message on and
show each job its last attempt, from the last attempt of each in the batch (as a statement
a row, applied in order, would leave them). Each statement is a round trip and a few
hundred microseconds of the driver's work a row here; the arrays cost one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    null,
    select,
)
from sqlalchemy import update as update_
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on

from jobpulse.storage import prepared
from jobpulse.storage.outbox import PENDING
from jobpulse.storage.tables import callback_attempts, jobs, outbox

#: The columns an attempt gives (callback_attempts' own, but its id).
COLUMNS = (
    "outbox_id",
    "webhook_id",
    "job_id",
    "event_type",
    "attempt",
    "attempted_at",
    "status_code",
    "error",
    "duration_ms",
    "state",
    "next_attempt_at",
)
#: What the statement is given of each: those, and the lease its message was claimed under.
GIVEN = (*COLUMNS, "lease")


def _record_all() -> Any:
    arrays = []
    for name in GIVEN:
        if name == "outbox_id":
            item: Any = BigInteger()
        elif name == "lease":
            item = outbox.c.locked_until.type
        else:
            item = callback_attempts.c[name].type
        arrays.append(bindparam(f"a_{name}", type_=ARRAY(item)))
    rows = func.unnest(*arrays).table_valued(*GIVEN, with_ordinality="n")
    given = select(rows.render_derived(name="rows")).cte("given")
    g = given.c
    kept = (
        insert(callback_attempts)
        .from_select(COLUMNS, select(*(g[name] for name in COLUMNS)).order_by(g.n))
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
        .values(
            state=case(
                (last.c.next_attempt_at.is_not(None), literal_column(f"'{PENDING}'")),
                else_=last.c.state,
            ),
            attempts=last.c.attempt,
            next_attempt_at=func.coalesce(last.c.next_attempt_at, last.c.attempted_at),
            locked_until=null(),
            delivered_at=case((last.c.state == literal_column("'delivered'"), last.c.attempted_at)),
        )
        .cte("moved")
    )
    # What attempts.shows_on_job says: a job's own callback.
    callbacks = (
        select(given)
        .where(g.job_id.is_not(None), g.event_type.like(literal_column("'job.%'")))
        .ext(distinct_on(g.job_id))
        .order_by(g.job_id, g.n.desc())
        .subquery("shown")
    )
    return (
        update_(jobs)
        .where(jobs.c.id == callbacks.c.job_id)
        .values(
            callback_sent_at=callbacks.c.attempted_at,
            callback_status_code=callbacks.c.status_code,
            callback_error=callbacks.c.error,
        )
        .add_cte(kept)
        .add_cte(moved)
    )


_RECORD_ALL = _record_all()


def record_attempts(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep the attempts, move their messages on and show them on their jobs, in one
    statement (see attempts.record_attempts).
    """
    params = {f"a_{name}": [row[name] for row in rows] for name in GIVEN}
    prepared.write(connection, _RECORD_ALL, params)
