"""The packaged migrations build exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from jobpulse.storage.engine import run_in_transaction
from jobpulse.storage.migrate import upgrade
from jobpulse.storage.tables import metadata


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def indexes(connection: Connection) -> dict[str, set[str]]:
    found = inspect(connection)
    return {name: {ix["name"] or "" for ix in found.get_indexes(name)} for name in metadata.tables}


async def test_upgrade_head_on_an_empty_database_equals_the_models(
    empty_database_url: str,
) -> None:
    await upgrade(empty_database_url)
    assert await run_in_transaction(empty_database_url, differences) == []
    found = await run_in_transaction(empty_database_url, indexes)
    expected = {
        name: {ix.name or "" for ix in table.indexes} for name, table in metadata.tables.items()
    }
    for name, wanted in expected.items():
        assert wanted <= found[name], name


async def test_upgrade_is_repeatable(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    await upgrade(empty_database_url)
