"""LLM usage rollups: the calls summed per organization, hour, job type and model (with TTFT
and duration histograms), added to in the transaction that records the calls and taken from
in the one that deletes them with their job (a job deleted or pruned), so that they always
sum the calls stored, as the job rollups count the jobs stored (storage/rollups.py).

Each transaction sums its calls by rollup row first, then adds to the rows in key order (a
lock order every writer shares: no deadlock between PostgreSQL writers). The same upsert is
spelled the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, text
from sqlalchemy.sql.dml import ReturningDelete

from jobpulse.metrics import DURATION_BUCKETS, TTFT_BUCKETS
from jobpulse.storage.feature_tables import llm_usage
from jobpulse.storage.tables import UTCDateTime
from jobpulse.usage.figures import SUMMED, Facet, bucket_index, call_sums
from jobpulse.usage.rules import TOKEN_KINDS, Call

#: A rollup row's key.
KEY = ("organization_id", "facet", "hour", "job_type", "provider", "model", "bucket")
#: Calls as the rollups count them: each with its job's organization and type.
Recorded = tuple[str, str, Call]
_UPSERT = text(
    f"INSERT INTO llm_usage_rollups ({', '.join((*KEY, *SUMMED))}) "
    f"VALUES ({', '.join(f':{name}' for name in (*KEY, *SUMMED))}) "
    f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
    + ", ".join(f"{name} = llm_usage_rollups.{name} + excluded.{name}" for name in SUMMED)
).bindparams(bindparam("hour", type_=UTCDateTime()))
_DROP_EMPTY = text(
    "DELETE FROM llm_usage_rollups WHERE "
    + " AND ".join(f"{name} = :{name}" for name in KEY)
    + " AND calls = 0"
).bindparams(bindparam("hour", type_=UTCDateTime()))
_ONE_CALL = (1, *[0] * (len(SUMMED) - 1))
#: What a deleted call's share of the rollups is read from.
_COUNTED = (
    "organization_id",
    "job_type",
    "id",
    "provider",
    "model",
    "recorded_at",
    *TOKEN_KINDS,
    "cost_pusd",
    "ttft_ns",
    "duration_ns",
)


def rollup_rows(recorded: Iterable[Recorded]) -> dict[tuple[Any, ...], list[int]]:
    """The rollup rows of `recorded` calls: each key (KEY) with its sums (SUMMED)."""
    rows: dict[tuple[Any, ...], list[int]] = {}

    def add(key: tuple[Any, ...], numbers: Iterable[int]) -> None:
        found = rows.setdefault(key, [0] * len(SUMMED))
        for at, number in enumerate(numbers):
            found[at] += number

    for organization_id, job_type, call in recorded:
        hour = call.recorded_at.replace(minute=0, second=0, microsecond=0)
        where = (hour, job_type, call.provider, call.model)
        add((organization_id, Facet.SUMS.value, *where, -1), call_sums(call))
        if call.ttft_ns is not None:
            at = bucket_index(call.ttft_ns, TTFT_BUCKETS)
            add((organization_id, Facet.TTFT.value, *where, at), _ONE_CALL)
        if call.duration_ns is not None:
            at = bucket_index(call.duration_ns, DURATION_BUCKETS)
            add((organization_id, Facet.DURATION.value, *where, at), _ONE_CALL)
    return rows


def add_to_rollups(connection: Connection, recorded: Iterable[Recorded]) -> None:
    """Add recorded calls to the rollups."""
    add_rows(connection, rollup_rows(recorded))


def add_rows(connection: Connection, rows: Mapping[tuple[Any, ...], list[int]]) -> None:
    """Add to rollup rows: each key (KEY) with its sums (SUMMED), in key order."""
    params = [
        dict(zip(KEY, key, strict=True)) | dict(zip(SUMMED, rows[key], strict=True))
        for key in sorted(rows)
    ]
    if params:
        connection.execute(_UPSERT, params)


def deleting_calls(where: ColumnElement[bool]) -> ReturningDelete[Any]:
    """The statement deleting the calls `where` picks, which gives back what the rollups
    counted of them (for `take_out_calls`).
    """
    return delete(llm_usage).where(where).returning(*(llm_usage.c[name] for name in _COUNTED))


def take_out_calls(
    connection: Connection, statement: ReturningDelete[Any], params: Mapping[str, Any]
) -> list[Recorded]:
    """Run `statement` (`deleting_calls`): the calls it deleted, for `remove_from_rollups`."""
    found = []
    for row in connection.execute(statement, params):
        values = dict(zip(_COUNTED, row, strict=True))
        organization_id, job_type = values.pop("organization_id"), values.pop("job_type")
        found.append((organization_id, job_type, Call(**values)))
    return found


def remove_from_rollups(connection: Connection, gone: Iterable[Recorded]) -> None:
    """Take deleted calls out of the rollups, and drop the rows that then count no call."""
    rows = rollup_rows(gone)
    add_rows(connection, {key: [-number for number in sums] for key, sums in rows.items()})
    if rows:
        connection.execute(_DROP_EMPTY, [dict(zip(KEY, key, strict=True)) for key in sorted(rows)])
