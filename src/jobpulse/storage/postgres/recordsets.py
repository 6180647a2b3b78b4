"""Many rows as one parameter: their JSON text (orjson's), which `json_to_recordset` turns
back into typed rows in the statement.

An array a column, unnested, was what the writes sent before: asyncpg checks each value of
each array with a Python-level isinstance, which cost 256 to 293 µs of the client's CPU for
16 rows of 14 columns, against 94 to 113 µs for their JSON text (docs/performance.md). The
text also reaches PostgreSQL as one value to parse, not one per cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import TypeDecorator, bindparam, column, func
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.types import TypeEngine

from jobpulse.storage.tables import Json


class _Rows(TypeDecorator[Any]):
    """A parameter of rows (dicts of JSON values, datetimes and enums) bound as JSON text."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Any) -> Any:
        return _text


def _text(rows: Any) -> str:
    # A naive datetime is taken as UTC, as the columns' own type takes it.
    return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()


def recordset(parameter: str, columns: Sequence[tuple[str, TypeEngine[Any]]], name: str) -> Any:
    """The rows of `parameter` (a list of dicts, keyed by column name; a key left out is
    NULL) as a FROM clause `name`, with `columns`, each of its type (a document's: jsonb).
    """
    typed = [column(key, JSONB() if isinstance(type_, Json) else type_) for key, type_ in columns]
    rows = func.json_to_recordset(bindparam(parameter, type_=_Rows()))
    return rows.table_valued(*typed).render_derived(name=name, with_types=True)
