"""Queries on API keys, which are stored as SHA-256 hashes only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select, update

from jobpulse.storage import notify
from jobpulse.storage.store import REVOKED_CHANNEL
from jobpulse.storage.tables import api_keys


def insert_key(connection: Connection, values: dict[str, Any]) -> None:
    """Store a new key (its hash, never the secret)."""
    connection.execute(api_keys.insert(), values)


def find_active_key(connection: Connection, key_hash: str) -> Row[Any] | None:
    """The unrevoked key with this hash, if any."""
    return connection.execute(
        select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    ).first()


def list_keys(connection: Connection) -> list[Row[Any]]:
    """Every key, oldest first."""
    return list(connection.execute(select(api_keys).order_by(api_keys.c.created_at)))


def count_active_keys(connection: Connection) -> int:
    """How many keys are not revoked."""
    statement = select(func.count()).where(api_keys.c.revoked_at.is_(None))
    return int(connection.execute(statement).scalar_one())


def revoke_key(connection: Connection, key_id: str, at: datetime) -> bool:
    """Revoke the key with this id; whether one was revoked. On PostgreSQL every replica
    listening on REVOKED_CHANNEL hears of it when this commits.
    """
    result = connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    revoked = result.rowcount == 1
    if revoked:
        notify.announce(connection, REVOKED_CHANNEL, key_id)
    return revoked
