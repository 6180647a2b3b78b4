"""SQLite's `Driver` (see storage/prepared.py): the stdlib sqlite3 connection under the
writer's SQLAlchemy connection, whose transaction SQLAlchemy has already begun.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection


def _sqlite3(connection: Connection) -> Any:
    # pysqlite's DBAPI connection is the driver's (a plain attribute; driver_connection goes
    # through the pool's record, a few properties per statement).
    return connection.connection.dbapi_connection


class Sqlite3Driver:
    """Compiled statements on sqlite3: no round trip, so nothing to gain from batching."""

    def fetch(self, connection: Connection, sql: str, values: list[Any]) -> list[Sequence[Any]]:
        return list(_sqlite3(connection).execute(sql, values).fetchall())

    def fetchrow(self, connection: Connection, sql: str, values: list[Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = _sqlite3(connection).execute(sql, values).fetchone()
        return row

    def execute(self, connection: Connection, sql: str, values: list[Any]) -> int:
        return int(_sqlite3(connection).execute(sql, values).rowcount)

    def executemany(self, connection: Connection, sql: str, values: list[list[Any]]) -> None:
        _sqlite3(connection).executemany(sql, values)

    @contextmanager
    def autocommit(self, connection: Connection) -> Iterator[None]:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            yield
        finally:
            connection.execution_options(isolation_level=connection.default_isolation_level)
