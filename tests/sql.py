"""What tests reach beneath the JobStore: the SQL database of a manager's store."""

from __future__ import annotations

from jobpulse.jobs.manager import JobManager
from jobpulse.storage.engine import Database
from jobpulse.storage.sql_store import SqlJobStore
from jobpulse.storage.store import JobStore


def database_of(owner: JobManager | JobStore) -> Database:
    """The database under a store, or a manager's (to set up or inspect rows a test needs)."""
    store = owner.store if isinstance(owner, JobManager) else owner
    assert isinstance(store, SqlJobStore)
    return store.database
