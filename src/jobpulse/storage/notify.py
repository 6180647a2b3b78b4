"""Announcements of a commit to every process (a key revoked, events written): sent in the
transaction of the change they announce, so listeners hear of it exactly when it commits
(where the database announces: see storage/dialects.py; PostgreSQL's listener is
storage/postgres/listening.py).
"""

from __future__ import annotations

from sqlalchemy import Connection

from jobpulse.storage.dialects import dialect_of


def announce(connection: Connection, channel: str, payload: str) -> None:
    """Tell every process's listeners on `channel` when this transaction commits (where
    the database announces: see storage/dialects.py).
    """
    dialect_of(connection).announce(connection, channel, payload)
