"""The hot statements of a transition, compiled once and run straight on the SQLite driver.

The SQLite writer thread spent most of each transition in SQLAlchemy's per-execution
machinery rather than in SQLite, holding the GIL the request loop needs. Everything here still
comes from SQLAlchemy (the Core statement, its compiler, each type's bind and result
processors); only the dispatch is skipped. Other databases take the ordinary path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql import Delete, Insert, Select, Update

Processor = Callable[[Any], Any] | None
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
                column.type.dialect_impl(dialect).result_processor(dialect, None)
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


_PREPARED: dict[tuple[int, tuple[str, ...]], Prepared] = {}


def _prepared(
    connection: Connection, statement: Select[Any] | Dml, keys: tuple[str, ...]
) -> Prepared:
    cache_key = (id(statement), keys)
    found = _PREPARED.get(cache_key)
    if found is None:
        found = _PREPARED[cache_key] = Prepared(statement, connection.dialect, keys)
    return found


def first(
    connection: Connection, statement: Select[Any], params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """The first row of a module-level select, or None."""
    if connection.dialect.name != "sqlite":
        return connection.execute(statement, params).first()
    prepared = _prepared(connection, statement, ())
    raw = connection.connection.driver_connection.execute(  # type: ignore[union-attr]
        prepared.sql, prepared.values(params)
    ).fetchone()
    return None if raw is None else prepared.row(raw)


def write(connection: Connection, statement: Dml, params: Mapping[str, Any]) -> int:
    """Run a module-level insert, update or delete; how many rows it touched.

    The SET or VALUES columns are the keys of `params` that name columns of the table.
    """
    if connection.dialect.name != "sqlite":
        return connection.execute(statement, params).rowcount
    columns = statement.table.columns
    keys = tuple(sorted(key for key in params if key in columns))
    prepared = _prepared(connection, statement, keys)
    cursor = connection.connection.driver_connection.execute(  # type: ignore[union-attr]
        prepared.sql, prepared.values(params)
    )
    return int(cursor.rowcount)
