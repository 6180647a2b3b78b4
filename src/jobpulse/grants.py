"""What each open stream stands on: the API key that opened it, and for the dashboard's live
stream the session too. A stream lasts only as long as they do.

One task per process rechecks, in one query per kind, the keys and sessions its open
streams hold: every `recheck_s` while any is open (a key revoked by the `keys revoke`
command, another process, or a session that expired), and at once when this process
revokes a key or ends a session, or, on PostgreSQL, when another replica says it did. A
grant found revoked is ended, and its streams close (see EventFeed.follow).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jobpulse.storage.store import JobStore

logger = logging.getLogger("jobpulse.grants")

#: Seconds between two rechecks while a stream is open: the longest a stream outlives a
#: revocation nobody announced (plus one read of the database).
RECHECK_S = 1.0


@dataclass(eq=False, slots=True)
class Grant:
    """What one open stream stands on; ended once its key or session is not valid."""

    key_hash: str
    #: The SHA-256 of the dashboard session's token (None for a stream opened with a key).
    session_id: str | None = None
    ended: bool = False
    _on_end: list[Callable[[], None]] = field(default_factory=list)

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the grant ends (at once if it has)."""
        if self.ended:
            callback()
        else:
            self._on_end.append(callback)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            for callback in self._on_end:
                callback()
            self._on_end.clear()


class Grants:
    """The grants of this process's open streams, rechecked against the database."""

    def __init__(
        self,
        store: JobStore,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        revoked: Callable[[set[str]], None] = lambda _hashes: None,
    ) -> None:
        self._store = store
        #: Told the hashes of keys a recheck found revoked (to forget them at once).
        self._revoked = revoked
        self._recheck_s = recheck_s
        self._clock = clock
        self._held: set[Grant] = set()
        self._wake = asyncio.Event()

    @property
    def held(self) -> int:
        """How many grants open streams hold."""
        return len(self._held)

    def hold(self, key_hash: str, session_id: str | None = None) -> Grant:
        """A grant for a stream about to open; `release` it when the stream ends."""
        grant = Grant(key_hash, session_id)
        self._held.add(grant)
        return grant

    def release(self, grant: Grant) -> None:
        self._held.discard(grant)

    def changed(self) -> None:
        """A key was revoked or a session ended (here or elsewhere): recheck now."""
        self._wake.set()

    async def run(self) -> None:
        """Recheck the held grants until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._recheck_s):
                    await self._wake.wait()
            self._wake.clear()
            if not self._held:
                continue
            try:
                await self.recheck()
            except Exception:  # the database may be away for a while: keep going
                logger.exception("rechecking the grants of open streams failed")

    async def recheck(self) -> None:
        """End the grants whose key was revoked or whose session ended or expired."""
        held = list(self._held)
        keys = {grant.key_hash for grant in held}
        active = await self._store.active_keys(keys)
        ids = {grant.session_id for grant in held if grant.session_id is not None}
        live = await self._store.live_sessions(ids, self._clock()) if ids else set()
        if keys - active:
            self._revoked(keys - active)
        for grant in held:
            if grant.key_hash not in active or (
                grant.session_id is not None and grant.session_id not in live
            ):
                self._held.discard(grant)
                grant.end()
