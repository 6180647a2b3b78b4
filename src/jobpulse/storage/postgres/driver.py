"""PostgreSQL's `Driver` (see storage/prepared.py): asyncpg under SQLAlchemy's adapter,
inside the transaction the adapter keeps for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import await_only

T = TypeVar("T")


def _on_asyncpg(connection: Connection, call: Callable[[Any], Awaitable[T]]) -> T:
    """`call(asyncpg_connection)` on the driver under `connection`, inside the transaction
    SQLAlchemy's adapter keeps for it (begun here if no statement has begun it yet), unless
    it is in autocommit (`AsyncpgDriver.autocommit`). Errors come out as SQLAlchemy's would:
    DBAPIError, the connection invalidated if it was lost.
    """
    # SQLAlchemy's asyncpg adapter has no public way to this: its attributes are those of
    # the version pinned in constraints.txt, and every PostgreSQL test goes through here.
    adapted: Any = connection.connection.dbapi_connection
    try:
        if adapted._transaction is None and not adapted.autocommit:
            await_only(adapted._start_transaction())
        return await_only(call(adapted._connection))
    except Exception as exc:
        raise _as_sqlalchemy(connection, adapted, exc) from exc


def _as_sqlalchemy(connection: Connection, adapted: Any, exc: Exception) -> Exception:
    dbapi: Any = connection.dialect.loaded_dbapi
    error = exc
    if not isinstance(error, dbapi.Error):
        try:
            adapted._handle_exception(error)  # raises the driver error as its DBAPI error
        except Exception as translated:
            error = translated
    if not isinstance(error, dbapi.Error):
        return error
    lost = connection.dialect.is_disconnect(error, adapted, None) or isinstance(
        exc, asyncpg.exceptions.InternalClientError
    )
    if lost:
        connection.invalidate(error)
    wrapped: Exception = DBAPIError.instance(
        None, None, error, dbapi.Error, connection_invalidated=lost, dialect=connection.dialect
    )
    return wrapped


class AsyncpgDriver:
    """Compiled statements on asyncpg, which prepares and caches each text."""

    def fetch(self, connection: Connection, sql: str, values: list[Any]) -> list[Sequence[Any]]:
        return _on_asyncpg(connection, lambda driver: driver.fetch(sql, *values))

    def fetchrow(self, connection: Connection, sql: str, values: list[Any]) -> Sequence[Any] | None:
        row: Sequence[Any] | None = _on_asyncpg(
            connection, lambda driver: driver.fetchrow(sql, *values)
        )
        return row

    def execute(self, connection: Connection, sql: str, values: list[Any]) -> int:
        status = _on_asyncpg(connection, lambda driver: driver.execute(sql, *values))
        return int(status.rsplit(" ", 1)[-1])

    def executemany(self, connection: Connection, sql: str, values: list[list[Any]]) -> None:
        _on_asyncpg(connection, lambda driver: driver.executemany(sql, values))

    @contextmanager
    def autocommit(self, connection: Connection) -> Iterator[None]:
        # The adapter's DBAPI `autocommit` switch, as SQLAlchemy's AUTOCOMMIT isolation level
        # sets it: that level set and reset through `Connection.execution_options` went
        # through SQLAlchemy's connection characteristics, a tenth of a batch of creates.
        adapted: Any = connection.connection.dbapi_connection
        if adapted._transaction is not None:
            raise RuntimeError("autocommit asked for inside a transaction")
        adapted.autocommit = True
        try:
            yield
        finally:
            adapted.autocommit = False
