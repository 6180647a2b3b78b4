"""SQLite's record of delivery attempts: three statements whatever their number.

The batch goes as one bound text, a JSON array of the attempts' rows, which `json_each`
turns back into rows inside SQLite: the writer thread builds one string rather than the
parameters of three statements a row, and SQLite's engine, which runs without the GIL the
delivery loop needs, does the rest. As on PostgreSQL (postgres/attempts.py), each message
and each job is left as the last of its attempts in the batch says (SQLite's `max()` takes
the other columns of a group from the row it picks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, literal_column, select
from sqlalchemy import update as update_

from jobpulse.storage import prepared
from jobpulse.storage.outbox import (
    ATTEMPT_COLUMNS,
    RECORDED_FIELDS,
    AttemptRow,
    is_job_callback,
    moved_on,
    shown_on_job,
)
from jobpulse.storage.sqlite.schema import to_text
from jobpulse.storage.tables import callback_attempts, jobs, outbox

#: The positions of the datetimes in a row, written as SQLite keeps them.
_MOMENTS = [RECORDED_FIELDS.index(name) for name in ("attempted_at", "next_attempt_at", "lease")]
_GIVEN_ROWS = func.json_each(bindparam("b_rows")).table_valued("key", "value").alias("given")


def _field(name: str) -> Any:
    """The field `name` of a given row."""
    path: Any = literal_column(f"'$[{RECORDED_FIELDS.index(name)}]'")
    return func.json_extract(_GIVEN_ROWS.c.value, path).label(name)


def _last_of_each(key: str, names: tuple[str, ...], *where: Any) -> Any:
    """Fields `names` of the given rows, the last one of each `key` (as a statement a row
    would leave it).
    """
    fields = [_field(name) for name in (key, *names)]
    picked = func.max(_GIVEN_ROWS.c.key).label("n")
    return select(*fields, picked).where(*where).group_by(_field(key)).subquery(f"last_{key}")


_KEEP = insert(callback_attempts).from_select(
    ATTEMPT_COLUMNS, select(*(_field(name) for name in ATTEMPT_COLUMNS)).order_by(_GIVEN_ROWS.c.key)
)
_message = _last_of_each(
    "outbox_id", ("lease", "state", "attempt", "attempted_at", "next_attempt_at")
)
_MOVE = (
    update_(outbox)
    .where(outbox.c.id == _message.c.outbox_id, outbox.c.locked_until == _message.c.lease)
    .values(moved_on(_message))
)
_job = _last_of_each(
    "job_id",
    ("attempted_at", "status_code", "error"),
    is_job_callback(_field("job_id"), _field("event_type")),
)
_SHOW = update_(jobs).where(jobs.c.id == _job.c.job_id).values(shown_on_job(_job))


def record_attempts(connection: Connection, rows: Sequence[AttemptRow]) -> None:
    """Keep the attempts, move their messages on and show them on their jobs (see
    attempts.record_attempts).
    """
    given = []
    for row in rows:
        values = list(row)
        for n in _MOMENTS:
            values[n] = to_text(values[n])
        given.append(values)
    params = {"b_rows": json.dumps(given, allow_nan=False)}
    for statement in (_KEEP, _MOVE, _SHOW):
        prepared.write(connection, statement, params)
