"""What tests reach beneath the JobStore: the SQL database of a manager's store."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.sql import ClauseElement

from jobpulse.jobs.manager import JobManager
from jobpulse.storage.engine import Database
from jobpulse.storage.sql_store import SqlJobStore
from jobpulse.storage.store import JobStore


def database_of(owner: JobManager | JobStore) -> Database:
    """The database under a store, or a manager's (to set up or inspect rows a test needs)."""
    store = owner.store if isinstance(owner, JobManager) else owner
    assert isinstance(store, SqlJobStore)
    return store.database


def plan_of(connection: Connection, statement: ClauseElement) -> str:
    """The plan the database would run `statement` by, its values written in, one step a line."""
    explain = "EXPLAIN" if connection.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
    rows = connection.exec_driver_sql(f"{explain} {compiled}").all()
    return "\n".join(str(row[-1]) for row in rows)
