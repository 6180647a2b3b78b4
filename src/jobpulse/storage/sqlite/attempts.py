"""SQLite's record of delivery attempts: one statement whatever their number.

The batch goes as one bound text, a JSON array of the attempts' rows, inserted into the view
`callback_attempt_records` (migration 0017), whose INSTEAD OF trigger keeps each attempt,
moves its message on and shows it on its job. So the writer thread builds one string, and
SQLite's engine, which runs without the GIL the delivery loop needs, reads it once and does
the rest in one step: the writer hands the GIL over and waits to take it back once a batch,
not once for each of three statements. The rows go in the order of the batch, so each
message and each job is left as the last of its attempts says (as on PostgreSQL,
postgres/attempts.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, column, func, insert, literal_column, select, table
from sqlalchemy import update as update_
from sqlalchemy.dialects import sqlite

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

#: The view an attempt's record is inserted into (nothing to read): RECORDED_FIELDS, and
#: whether the attempt is the last of its message's in the batch, the one that moves it on.
RECORDS = "callback_attempt_records"
_VIEW_FIELDS = (*RECORDED_FIELDS, "last_of_message")
_RECORDS = table(RECORDS, *(column(name) for name in _VIEW_FIELDS))
#: The positions of the datetimes in a row, written as SQLite keeps them.
_ATTEMPTED_AT, _NEXT_ATTEMPT_AT, _LEASE = (
    RECORDED_FIELDS.index(name) for name in ("attempted_at", "next_attempt_at", "lease")
)
_GIVEN_ROWS = func.json_each(bindparam("b_rows")).table_valued("key", "value").alias("given")


def _field(name: str) -> Any:
    """The field `name` of a given row."""
    path: Any = literal_column(f"'$[{RECORDED_FIELDS.index(name)}]'")
    return func.json_extract(_GIVEN_ROWS.c.value, path)


_LAST_OF_MESSAGE = func.max(_GIVEN_ROWS.c.key).over(partition_by=_field("outbox_id"))
_RECORD = insert(_RECORDS).from_select(
    _VIEW_FIELDS,
    select(
        *(_field(name).label(name) for name in RECORDED_FIELDS),
        (_GIVEN_ROWS.c.key == _LAST_OF_MESSAGE).label("last_of_message"),
    ).order_by(_GIVEN_ROWS.c.key),
)


def record_attempts(connection: Connection, rows: Sequence[AttemptRow]) -> None:
    """Keep the attempts, move their messages on and show them on their jobs (see
    attempts.record_attempts).
    """
    given = []
    lease: Any = None
    lease_text = None
    for row in rows:
        values = list(row)
        values[_ATTEMPTED_AT] = to_text(values[_ATTEMPTED_AT])
        values[_NEXT_ATTEMPT_AT] = to_text(values[_NEXT_ATTEMPT_AT])
        if values[_LEASE] is not lease:  # the messages of a claim share their lease
            lease = values[_LEASE]
            lease_text = to_text(lease)
        values[_LEASE] = lease_text
        given.append(values)
    prepared.write(connection, _RECORD, {"b_rows": json.dumps(given, allow_nan=False)})


class _Inserted:
    """The row the trigger runs for (`new`), as the shared column helpers read a row."""

    c: Any = SimpleNamespace(**{name: literal_column(f"new.{name}") for name in _VIEW_FIELDS})


def _trigger_body() -> str:
    """What the trigger does for each row: the statements record_attempts stands for."""
    new = _Inserted.c
    keep = insert(callback_attempts).values({name: getattr(new, name) for name in ATTEMPT_COLUMNS})
    move = (
        update_(outbox)
        .where(new.last_of_message, outbox.c.id == new.outbox_id)
        .where(outbox.c.locked_until == new.lease)
        .values(moved_on(_Inserted))
    )
    show = (
        update_(jobs)
        .where(is_job_callback(new.job_id, new.event_type), jobs.c.id == new.job_id)
        .values(shown_on_job(_Inserted))
    )
    dialect = sqlite.dialect()
    return "".join(
        f"{statement.compile(dialect=dialect, compile_kwargs={'literal_binds': True})};\n"
        for statement in (keep, move, show)
    )


def create_recorder() -> list[str]:
    """The statements creating the view record_attempts inserts into, and its trigger.

    The trigger is compiled from `moved_on` and `shown_on_job` when migration 0017 runs, and
    stays as it was then: a change to them needs a migration that drops and creates it again
    (the tests of recording, run on both databases, fail otherwise).
    """
    nothing = ", ".join(f"NULL AS {name}" for name in _VIEW_FIELDS)
    return [
        f"CREATE VIEW {RECORDS} AS SELECT {nothing} WHERE 0",
        f"CREATE TRIGGER {RECORDS}_insert INSTEAD OF INSERT ON {RECORDS} BEGIN\n"
        f"{_trigger_body()}END",
    ]


def drop_recorder() -> list[str]:
    """The statements dropping what create_recorder made."""
    return [f"DROP TRIGGER {RECORDS}_insert", f"DROP VIEW {RECORDS}"]
