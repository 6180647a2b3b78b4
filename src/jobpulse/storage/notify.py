"""PostgreSQL LISTEN: news from every replica (a key revoked, say), reconnecting for ever.

A NOTIFY is sent in the transaction of the change it announces, so listeners hear of it
exactly when it commits. Notifications sent while a listener is disconnected are lost:
each (re)connection is announced to the callback as `None`, meaning "assume you missed some".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import Connection

from jobpulse.storage.dialects import dialect_of

logger = logging.getLogger("jobpulse.storage")

#: Seconds between attempts to reconnect a listener.
RECONNECT_S = 1.0


def announce(connection: Connection, channel: str, payload: str) -> None:
    """Tell every process's listeners on `channel` when this transaction commits (where
    the database announces: see storage/dialects.py).
    """
    dialect_of(connection).announce(connection, channel, payload)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _connection: event.set()


async def listen(url: str, channel: str, callback: Callable[[str | None], None]) -> None:
    """Call `callback(payload)` for each notification on `channel`, until cancelled."""
    while True:
        try:
            connection = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("cannot listen on %s: %s", channel, type(exc).__name__)
            await asyncio.sleep(RECONNECT_S)
            continue
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(_setter(lost))
            await connection.add_listener(
                channel, lambda _connection, _pid, _channel, payload: callback(payload)
            )
            callback(None)
            await lost.wait()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("listening on %s failed: %s", channel, type(exc).__name__)
        finally:
            connection.terminate()
        await asyncio.sleep(RECONNECT_S)
