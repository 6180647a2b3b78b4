"""How PostgreSQL keeps what the databases store their own ways: JSON as jsonb, integer keys
as bigints, each event stamped with its transaction; and the parts of migrations only
PostgreSQL needs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine


class PostgresSchema:
    """PostgreSQL's schema (see `Dialect`)."""

    alters_by_copy = False
    transaction_id_default: str | None = "pg_current_xact_id()::text::bigint"

    def json_type(self) -> TypeEngine[Any]:
        return JSONB()

    def serial_type(self) -> TypeEngine[int]:
        return BigInteger()

    def datetime_binder(self) -> None:
        return None

    def datetime_reader(self) -> None:
        return None

    def unreadable_json(
        self, connection: Connection, table: str, key: str, column: str
    ) -> list[tuple[Any, str]]:
        """None: jsonb never accepted a document that is not JSON."""
        return []

    def rollup_triggers(self, deleted: str, updated: str, changed: str) -> list[str]:
        """Deletes only: the statements that update jobs write their deltas themselves (a
        row trigger cost batches of transitions 15 %).
        """
        return [
            f"""
            CREATE FUNCTION jobpulse_rollup_delta() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {deleted}
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER jobs_rollup_delete AFTER DELETE ON jobs
            FOR EACH ROW EXECUTE FUNCTION jobpulse_rollup_delta()
            """,
        ]

    def drop_rollup_triggers(self) -> list[str]:
        return ["DROP TRIGGER jobs_rollup_delete ON jobs", "DROP FUNCTION jobpulse_rollup_delta()"]
