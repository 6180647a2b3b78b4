"""Queries on dashboard sessions (stored by the SHA-256 of their token) and on what open
streams stand on: keys still active, sessions still live.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, String, delete, literal, or_, select, update

from jobpulse.storage import notify
from jobpulse.storage.store import REVOKED_CHANNEL, SESSION_ENDED
from jobpulse.storage.tables import UTCDateTime, api_keys, dashboard_sessions

#: Values per IN list (each a bound parameter).
CHUNK = 500


def start_session(
    connection: Connection, session_id: str, key_hash: str, now: datetime, expires_at: datetime
) -> bool:
    """Store a session of the active key with this hash; False if there is none. Sessions
    that have expired or ended are deleted on the way.
    """
    connection.execute(
        delete(dashboard_sessions).where(
            or_(dashboard_sessions.c.expires_at <= now, dashboard_sessions.c.ended_at.is_not(None))
        )
    )
    chosen = select(
        literal(session_id, String(64)),
        api_keys.c.id,
        literal(now, UTCDateTime()),
        literal(expires_at, UTCDateTime()),
    ).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    columns = ["id", "key_id", "created_at", "expires_at"]
    result = connection.execute(dashboard_sessions.insert().from_select(columns, chosen))
    return result.rowcount == 1


def find_session(
    connection: Connection, session_id: str, now: datetime
) -> Row[Any, Any, Any, Any] | None:
    """The key (organization, user, admin, hash) of a live session with this id, if any."""
    return connection.execute(
        select(
            api_keys.c.organization_id,
            api_keys.c.user_id,
            api_keys.c.is_admin,
            api_keys.c.key_hash,
        )
        .join(api_keys, api_keys.c.id == dashboard_sessions.c.key_id)
        .where(
            dashboard_sessions.c.id == session_id,
            dashboard_sessions.c.ended_at.is_(None),
            dashboard_sessions.c.expires_at > now,
            api_keys.c.revoked_at.is_(None),
        )
    ).first()


def end_session(connection: Connection, session_id: str, now: datetime) -> bool:
    """End a session (signed out); whether a live one was ended. On PostgreSQL every replica
    listening on REVOKED_CHANNEL hears of it when this commits.
    """
    result = connection.execute(
        update(dashboard_sessions)
        .where(dashboard_sessions.c.id == session_id, dashboard_sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )
    ended = result.rowcount == 1
    if ended:
        notify.announce(connection, REVOKED_CHANNEL, SESSION_ENDED)
    return ended


def _chunks(values: Collection[str]) -> list[list[str]]:
    ordered = sorted(values)
    return [ordered[i : i + CHUNK] for i in range(0, len(ordered), CHUNK)]


def active_keys(connection: Connection, key_hashes: Collection[str]) -> set[str]:
    """Those of `key_hashes` whose keys are not revoked."""
    found: set[str] = set()
    for chunk in _chunks(key_hashes):
        found.update(
            connection.execute(
                select(api_keys.c.key_hash).where(
                    api_keys.c.key_hash.in_(chunk), api_keys.c.revoked_at.is_(None)
                )
            ).scalars()
        )
    return found


def live_sessions(connection: Connection, session_ids: Collection[str], now: datetime) -> set[str]:
    """Those of `session_ids` that are neither ended nor expired, of keys not revoked."""
    found: set[str] = set()
    for chunk in _chunks(session_ids):
        found.update(
            connection.execute(
                select(dashboard_sessions.c.id)
                .join(api_keys, api_keys.c.id == dashboard_sessions.c.key_id)
                .where(
                    dashboard_sessions.c.id.in_(chunk),
                    dashboard_sessions.c.ended_at.is_(None),
                    dashboard_sessions.c.expires_at > now,
                    api_keys.c.revoked_at.is_(None),
                )
            ).scalars()
        )
    return found
