"""The hot statements of a transition, compiled once and run straight on the driver.

The SQLite writer thread spent most of each transition in SQLAlchemy's per-execution
machinery rather than in SQLite, holding the GIL the request loop needs; on PostgreSQL that
machinery cost a lone transition a third of its time (1,040 against 836 µs, three
statements). Everything here still comes from SQLAlchemy (the Core statement, its compiler,
each type's bind and result processors, on PostgreSQL the adapter's transaction and its
errors); only the dispatch is skipped. Other databases take the ordinary path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.util import await_only

T = TypeVar("T")
Processor = Callable[[Any], Any] | None
#: The type code result processors are asked for: asyncpg's double precision (701), which it
#: returns as a float already; the other types' processors do not look at it.
_FLOAT8 = 701
Dml = Insert | Update | Delete


class Prepared:
    """One statement compiled for SQLite, with its parameter order and type conversions."""

    def __init__(self, statement: Select[Any] | Dml, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        self.binds: list[Processor] = [
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        ]
        self.results: list[Processor] = []
        if isinstance(statement, Select):
            self.results = [
                column.type.dialect_impl(dialect).result_processor(dialect, _FLOAT8)
                for column in statement.selected_columns
            ]

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for `params`, converted as their types say."""
        return [
            value if bind is None or value is None else bind(value)
            for bind, value in zip(self.binds, (params[name] for name in self.names), strict=True)
        ]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        """A result row converted as its columns' types say."""
        return tuple(
            value if result is None or value is None else result(value)
            for result, value in zip(self.results, raw, strict=True)
        )


_PREPARED: dict[tuple[str, int, tuple[str, ...]], Prepared] = {}


def _prepared(
    connection: Connection, statement: Select[Any] | Dml, keys: tuple[str, ...]
) -> Prepared:
    cache_key = (connection.dialect.name, id(statement), keys)
    found = _PREPARED.get(cache_key)
    if found is None:
        found = _PREPARED[cache_key] = Prepared(statement, connection.dialect, keys)
    return found


def _on_asyncpg(connection: Connection, call: Callable[[Any], Awaitable[T]]) -> T:
    """`call(asyncpg_connection)` on the driver under `connection`, inside the transaction
    SQLAlchemy's adapter keeps for it (begun here if no statement has begun it yet). Errors
    come out as SQLAlchemy's would: DBAPIError, the connection invalidated if it was lost.
    """
    # SQLAlchemy's asyncpg adapter has no public way to this: its attributes are those of
    # the version pinned in constraints.txt, and every PostgreSQL test goes through here.
    adapted: Any = connection.connection.dbapi_connection
    try:
        if adapted._transaction is None:
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


def rows(
    connection: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row of a module-level select."""
    prepared = _prepared(connection, statement, ())
    values = prepared.values(params)
    if connection.dialect.name == "postgresql":
        raw = _on_asyncpg(connection, lambda driver: driver.fetch(prepared.sql, *values))
    elif connection.dialect.name == "sqlite":
        raw = _sqlite(connection).execute(prepared.sql, values).fetchall()
    else:
        return [tuple(row) for row in connection.execute(statement, params)]
    return [prepared.row(row) for row in raw]


def first(
    connection: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """The first row of a module-level select, or None."""
    if connection.dialect.name not in ("postgresql", "sqlite"):
        return connection.execute(statement, params).first()
    prepared = _prepared(connection, statement, ())
    values = prepared.values(params)
    if connection.dialect.name == "postgresql":
        raw = _on_asyncpg(connection, lambda driver: driver.fetchrow(prepared.sql, *values))
    else:
        raw = _sqlite(connection).execute(prepared.sql, values).fetchone()
    return None if raw is None else prepared.row(raw)


def write(connection: Connection, statement: Dml, params: Mapping[str, Any]) -> int:
    """Run a module-level insert, update or delete; how many rows it touched.

    The SET or VALUES columns are the keys of `params` that name columns of the table.
    """
    if connection.dialect.name not in ("postgresql", "sqlite"):
        return connection.execute(statement, params).rowcount
    prepared = _prepared(connection, statement, _columns(statement, params))
    values = prepared.values(params)
    if connection.dialect.name == "postgresql":
        status = _on_asyncpg(connection, lambda driver: driver.execute(prepared.sql, *values))
        return int(status.rsplit(" ", 1)[-1])
    return int(_sqlite(connection).execute(prepared.sql, values).rowcount)


def write_many(connection: Connection, statement: Dml, params: Sequence[Mapping[str, Any]]) -> None:
    """Run a module-level insert or update once for each of `params` (all with the same
    keys), as one batch on the driver.
    """
    if connection.dialect.name not in ("postgresql", "sqlite"):
        connection.execute(statement, list(params))
        return
    keys = _columns(statement, params[0])
    if isinstance(statement, Insert):  # columns NULL in every row, and NULL by default, go
        table = statement.table.columns
        keys = tuple(
            key
            for key in keys
            if table[key].server_default is not None
            or table[key].default is not None
            or any(one[key] is not None for one in params)
        )
    prepared = _prepared(connection, statement, keys)
    values = [prepared.values(one) for one in params]
    if connection.dialect.name == "postgresql":
        _on_asyncpg(connection, lambda driver: driver.executemany(prepared.sql, values))
    else:
        _sqlite(connection).executemany(prepared.sql, values)


def _columns(statement: Dml, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of `params` that name columns of the statement's table, in order."""
    columns = statement.table.columns
    return tuple(sorted(key for key in params if key in columns))


def _sqlite(connection: Connection) -> Any:
    return connection.connection.driver_connection
