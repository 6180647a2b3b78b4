"""uvicorn's HTTP protocol with a deadline on request headers and on clients that stop reading.

uvicorn closes a keep-alive connection that stays idle after a response, but a connection
that opens and sends nothing, or sends its headers a byte at a time, is held for ever: a
few hundred of them exhaust the server's file descriptors. Here every request's headers
must arrive within `header_timeout_s` of the connection opening or of the last response.

Likewise a client that stops reading a response (a live stream, most of all) would hold its
connection, its stream and what waits to be sent for ever: once the socket's buffers are
full, the server's writes pause, and if they stay paused `send_timeout_s` the connection is
dropped (aborted: a graceful close would wait for the client to read what is buffered).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobpulse.config import Settings

logger = logging.getLogger("jobpulse.api")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """The httptools protocol, closing connections whose headers take too long."""

    header_timeout_s = 10.0
    send_timeout_s = 10.0
    _headers_timer: asyncio.TimerHandle | None = None
    _stalled_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._unstall()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled_timer is None:
            self._stalled_timer = self.loop.call_later(self.send_timeout_s, self._drop)

    def resume_writing(self) -> None:
        self._unstall()
        super().resume_writing()

    def _unstall(self) -> None:
        if self._stalled_timer is not None:
            self._stalled_timer.cancel()
            self._stalled_timer = None

    def _drop(self) -> None:
        self._stalled_timer = None
        logger.info(
            "dropped a connection from %s that read nothing for %g s",
            (self.client or ("?",))[0],
            self.send_timeout_s,
        )
        self.transport.abort()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's headers are already here
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()  # the next request's headers get the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._headers_timer = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _expire(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn.run options that bound what one client can hold."""
    protocol = type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout_s": settings.header_timeout_s, "send_timeout_s": settings.send_timeout_s},
    )
    return {
        "http": protocol,
        "timeout_keep_alive": settings.keep_alive_s,
        # Past this many connections and requests in flight, uvicorn answers 503.
        "limit_concurrency": settings.max_connections,
    }
