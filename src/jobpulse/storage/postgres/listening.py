"""PostgreSQL LISTEN: news from every replica (a key revoked, say), reconnecting for ever.

Notifications sent while a listener is disconnected are lost: each (re)connection is
announced to the callback as `None`, meaning "assume you missed some".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

logger = logging.getLogger("jobpulse.storage")

#: Seconds between attempts to reconnect a listener.
RECONNECT_S = 1.0


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
