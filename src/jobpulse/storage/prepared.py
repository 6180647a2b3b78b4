"""The hot statements of a transition, compiled once and run straight on the driver.

SQLAlchemy's per-execution machinery, not the database, was most of a transition's time: on
SQLite the writer thread held the GIL the request loop needs through it, on PostgreSQL it
outweighed the round trips. Everything here still comes from SQLAlchemy (the Core statement,
its compiler, each type's bind and result processors); only the dispatch is skipped, and
each driver (its `Driver`, see storage/dialects.py) runs the compiled text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import Any, Protocol

from sqlalchemy import ARRAY, ColumnElement, Connection, Dialect
from sqlalchemy.sql import Delete, Insert, Select, Update
from sqlalchemy.types import TypeEngine

from jobpulse.storage.dialects import dialect_of

Processor = Callable[[Any], Any] | None
#: The type code result processors are asked for: asyncpg's double precision (701), which it
#: returns as a float already; the other types' processors do not look at it.
_FLOAT8 = 701
Dml = Insert | Update | Delete


class Driver(Protocol):
    """Runs compiled statement text with positional values on the driver under a Connection,
    in the transaction SQLAlchemy keeps; its errors come out as SQLAlchemy's would.
    """

    def fetch(self, connection: Connection, sql: str, values: list[Any]) -> list[Sequence[Any]]:
        """Every row."""
        ...

    def fetchrow(self, connection: Connection, sql: str, values: list[Any]) -> Sequence[Any] | None:
        """The first row, or None."""
        ...

    def execute(self, connection: Connection, sql: str, values: list[Any]) -> int:
        """How many rows the statement touched."""
        ...

    def executemany(self, connection: Connection, sql: str, values: list[list[Any]]) -> None:
        """The statement once for each of `values`, as one batch."""
        ...

    def autocommit(self, connection: Connection) -> AbstractContextManager[None]:
        """No transaction around the statements run within (none may be open): each one
        commits on its own.
        """
        ...


class Prepared:
    """One statement compiled for a database, with its parameter order and type conversions."""

    def __init__(self, statement: Select[Any] | Dml, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        self.binds = [_bind_processor(compiled.binds[name].type, dialect) for name in self.names]
        # A select's columns, or the RETURNING columns of an insert, update or delete.
        selected: Sequence[ColumnElement[Any]] = ()
        if isinstance(statement, Select):
            selected = list(statement.selected_columns)
        elif statement._returning:
            selected = list(statement.exported_columns)
        self.results: list[Processor] = [
            column.type.dialect_impl(dialect).result_processor(dialect, _FLOAT8)
            for column in selected
        ]
        # The hot loops below touch only the positions that convert, and take the values
        # with one C call (a transition runs a few of these statements).
        self._take = itemgetter(*self.names) if len(self.names) > 1 else None
        self._bound = [(n, bind) for n, bind in enumerate(self.binds) if bind is not None]
        self._converted = [(n, result) for n, result in enumerate(self.results) if result]

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for `params`, converted as their types say."""
        if self._take is not None:
            values = list(self._take(params))
        else:
            values = [params[name] for name in self.names]
        for n, bind in self._bound:
            if values[n] is not None:
                values[n] = bind(values[n])
        return values

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        """A result row converted as its columns' types say."""
        if len(raw) != len(self.results):
            raise ValueError(f"a row of {len(raw)} values for {len(self.results)} columns")
        if not self._converted:
            return tuple(raw)
        values = list(raw)
        for n, result in self._converted:
            if values[n] is not None:
                values[n] = result(values[n])
        return tuple(values)


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """`type_`'s bind processor. The array parameters here are flat lists (a column's values,
    see storage/postgres/writes.py): each item goes through its type's processor if it has
    one, and a list of items that need none is bound as it is, where SQLAlchemy's array
    processor would copy it and look at its first item on every call.
    """
    if isinstance(type_, ARRAY):
        item = type_.item_type.dialect_impl(dialect).bind_processor(dialect)
        if item is None:
            return None
        return lambda items: [item(value) for value in items]
    return type_.dialect_impl(dialect).bind_processor(dialect)


_PREPARED: dict[tuple[type[Dialect], int, tuple[str, ...]], tuple[Prepared, Driver]] = {}


def _prepared(
    connection: Connection, statement: Select[Any] | Dml, keys: tuple[str, ...]
) -> tuple[Prepared, Driver]:
    cache_key = (type(connection.dialect), id(statement), keys)
    found = _PREPARED.get(cache_key)
    if found is None:
        compiled = Prepared(statement, connection.dialect, keys)
        found = _PREPARED[cache_key] = (compiled, dialect_of(connection).driver)
    return found


def rows(
    connection: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row of a module-level select."""
    prepared, driver = _prepared(connection, statement, ())
    raw = driver.fetch(connection, prepared.sql, prepared.values(params))
    return [prepared.row(row) for row in raw]


def returned(
    connection: Connection, statement: Dml, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The RETURNING rows of a module-level insert, update or delete whose values are all
    bind parameters of its own.
    """
    prepared, driver = _prepared(connection, statement, ())
    raw = driver.fetch(connection, prepared.sql, prepared.values(params))
    return [prepared.row(row) for row in raw]


def first(
    connection: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """The first row of a module-level select, or None."""
    prepared, driver = _prepared(connection, statement, ())
    raw = driver.fetchrow(connection, prepared.sql, prepared.values(params))
    return None if raw is None else prepared.row(raw)


def write(connection: Connection, statement: Dml, params: Mapping[str, Any]) -> int:
    """Run a module-level insert, update or delete; how many rows it touched.

    The SET or VALUES columns are the keys of `params` that name columns of the table.
    """
    prepared, driver = _prepared(connection, statement, _columns(statement, params))
    return driver.execute(connection, prepared.sql, prepared.values(params))


def write_many(connection: Connection, statement: Dml, params: Sequence[Mapping[str, Any]]) -> None:
    """Run a module-level insert or update once for each of `params` (all with the same
    keys), as one batch on the driver.
    """
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
    prepared, driver = _prepared(connection, statement, keys)
    driver.executemany(connection, prepared.sql, [prepared.values(one) for one in params])


_COLUMNS: dict[tuple[int, tuple[str, ...]], tuple[str, ...]] = {}
#: How many orders of keys are kept (the writes make a few dozen).
_COLUMNS_KEPT = 4096


def _columns(statement: Dml, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys of `params` that name columns of the statement's table, in order (found
    once for each statement and order of keys: a transition's are always the same).
    """
    key = (id(statement), tuple(params))
    found = _COLUMNS.get(key)
    if found is None:
        names = frozenset(statement.table.columns.keys())
        found = tuple(sorted(params.keys() & names))
        if len(_COLUMNS) < _COLUMNS_KEPT:
            _COLUMNS[key] = found
    return found
