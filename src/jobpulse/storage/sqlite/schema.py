"""How SQLite keeps what the databases store their own ways: timestamps as text, JSON as
text, integer keys as the rowid; and the parts of migrations only SQLite needs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Integer
from sqlalchemy.types import TypeEngine

from jobpulse.storage.tables import utc


def to_text(value: datetime | None) -> str | None:
    global _last
    if value is None:
        return None
    last = _last
    if last[0] is value:  # a transition writes its moment two or three times
        return last[1]
    moment = value if value.tzinfo is UTC else utc(value)  # aware UTC needs no conversion
    text = moment.isoformat(" ", "microseconds")[:_TEXT_LENGTH]  # the offset cut off
    _last = (value, text)  # one assignment: a thread reading it sees either pair whole
    return text


#: 'YYYY-MM-DD HH:MM:SS.ffffff' (a datetime's year has four digits).
_TEXT_LENGTH = 26
#: The last datetime written and its text (held, so that `is` cannot match another).
_last: tuple[datetime | None, str] = (None, "")


def _from_text(value: str | None) -> datetime | None:
    # Appending the offset is several times faster than datetime.replace(tzinfo=UTC).
    return None if value is None else datetime.fromisoformat(value + "+00:00")


class SqliteSchema:
    """SQLite's schema (see `Dialect`). Timestamps are naive UTC text in SQLAlchemy's format
    ('2026-01-01 12:00:00.000000'), converted with the C-fast isoformat/fromisoformat rather
    than a regular expression.
    """

    alters_by_copy = True
    transaction_id_default: str | None = None

    def json_type(self) -> TypeEngine[Any]:
        return JSON()

    def serial_type(self) -> TypeEngine[int]:
        return Integer()

    def datetime_binder(self) -> Callable[[Any], Any]:
        return to_text

    def datetime_reader(self) -> Callable[[Any], Any]:
        return _from_text

    def unreadable_json(
        self, connection: Connection, table: str, key: str, column: str
    ) -> list[tuple[Any, str]]:
        """SQLite kept NaN and ±Infinity as the non-JSON tokens `NaN` and `Infinity`."""
        rows = connection.exec_driver_sql(
            f"SELECT {key}, {column} FROM {table} WHERE json_valid({column}) = 0"
        )
        return [(row_key, text) for row_key, text in rows]

    def rollup_triggers(self, deleted: str, updated: str, changed: str) -> list[str]:
        """Deletes and updates (where a trigger cost less than one more statement)."""
        return [
            f"""
            CREATE TRIGGER jobs_rollup_delete AFTER DELETE ON jobs BEGIN
                {deleted}
            END
            """,
            f"""
            CREATE TRIGGER jobs_rollup_update AFTER UPDATE ON jobs WHEN {changed} BEGIN
                {updated}
            END
            """,
        ]

    def drop_rollup_triggers(self) -> list[str]:
        return ["DROP TRIGGER jobs_rollup_delete", "DROP TRIGGER jobs_rollup_update"]
