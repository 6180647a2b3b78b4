"""uvicorn's HTTP protocol (httptools), bounding what one client can hold of the server.

uvicorn waits for ever for a request's headers and body, takes headers of any size and lets
one address take every connection. Here a request's headers must arrive within
`header_timeout_s` of the connection opening or of the last response (or it is closed), and
its body within `body_timeout_s` of its headers (408); its line and headers may take
`max_header_bytes` and `max_headers` fields (431); one peer address holds `max_per_client`
connections at once (429 to the next). A refusal is answered here, under the app.

A client that stops reading a response (a live stream, most of all) would hold its
connection, its stream and what waits to be sent for ever: once the socket's buffers are
full, the server's writes pause, and if they stay paused `send_timeout_s` the connection is
dropped (aborted: a graceful close would wait for the client to read what is buffered).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobpulse.api.refusal import refusal_bytes
from jobpulse.config import Settings
from jobpulse.errors import (
    HeadersTooLargeError,
    JobPulseError,
    RequestTimeoutError,
    TooManyConnectionsError,
)

#: Seconds a refused connection is kept open, what comes on it read and dropped (see _refuse).
LINGER_S = 2.0

logger = logging.getLogger("jobpulse.api")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """The httptools protocol with deadlines and size limits on requests, and a per-client
    connection limit. `server_options` makes a subclass per server with its settings.
    """

    header_timeout_s = 10.0
    body_timeout_s = 10.0
    send_timeout_s = 10.0
    max_header_bytes = 64 * 1024
    max_headers = 100
    max_per_client = 256
    #: Open connections per peer address, shared by the connections of one server.
    held: ClassVar[Counter[str]] = Counter()

    _headers_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _linger_timer: asyncio.TimerHandle | None = None
    _stalled_timer: asyncio.TimerHandle | None = None
    _peer: str | None = None
    _refusal: JobPulseError | None = None
    _in_message = False
    _in_headers = False
    _body_pending = False
    _from_chunk_start = False
    _counted = False
    _header_bytes = 0  # of the request's headers, as they come
    _tail = b""  # the last bytes of a chunk that ended within headers

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client is not None:
            self._peer = self.client[0]
            self.held[self._peer] += 1
            if self.held[self._peer] > self.max_per_client:
                message = f"more than {self.max_per_client} connections from {self._peer}"
                self._refusal = TooManyConnectionsError(message)
                # Answered and closed at once: lingering would hold what the limit protects.
                default_headers = self.server_state.default_headers
                self.transport.write(refusal_bytes(self._refusal, default_headers))
                self.transport.close()
                return
        self._headers_timer = self.loop.call_later(self.header_timeout_s, self._headers_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._unstall()
        if self._peer is not None:
            self.held[self._peer] -= 1
            if self.held[self._peer] <= 0:
                del self.held[self._peer]
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
            self._peer or "a client",
            self.send_timeout_s,
        )
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # answered: what still comes is read and dropped until the connection closes
        # A request that begins in this chunk begins at its start unless it follows another.
        self._from_chunk_start = not self._in_message
        if (self._from_chunk_start or self._in_headers) and self._too_many_header_bytes(data):
            self._refuse(self._headers_too_large())  # before the parser holds any of it
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)  # a limit, raised from a parser callback
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_headers:
            self._tail = data[-3:]  # the headers' end may come astride two chunks
        if self._body_pending and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_expired)

    def _too_many_header_bytes(self, data: bytes) -> bool:
        """Count the bytes of `data` up to the end of the headers (the whole of it if they do
        not end there); whether the request's headers have passed the limit.
        """
        end = (self._tail + data).find(b"\r\n\r\n")
        self._header_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
        return self._header_bytes > self.max_header_bytes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = self._in_headers = True
        # Whether data_received counts its header bytes from the first (it does not count
        # those of a request that follows another in the same chunk).
        self._counted = self._from_chunk_start
        self._from_chunk_start = False

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._tail = b""
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None
        if len(self.headers) > self.max_headers:
            message = f"a request may have {self.max_headers} header fields at most"
            self._refusal = HeadersTooLargeError(message)
            raise self._refusal  # the parser stops; data_received answers it
        if not self._counted and self._parsed_size() > self.max_header_bytes:
            self._refusal = self._headers_too_large()
            raise self._refusal
        self._header_bytes = 0
        # An upgraded connection (a WebSocket) leaves this protocol: no body to wait for.
        self._body_pending = not self.parser.should_upgrade()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = self._body_pending = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's headers are already here
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing() and self._headers_timer is None:
            # The next request's headers get the same deadline.
            self._headers_timer = self.loop.call_later(self.header_timeout_s, self._headers_expired)

    def _parsed_size(self) -> int:
        """The size of the request line and headers, as parsed (as sent, give or take)."""
        fields = sum(len(name) + len(value) + 4 for name, value in self.headers)
        return len(self.url) + fields + len(b"GET  HTTP/1.1\r\n\r\n")

    def _headers_too_large(self) -> HeadersTooLargeError:
        message = f"the request line and headers take more than {self.max_header_bytes} bytes"
        return HeadersTooLargeError(message)

    def _refuse(self, refusal: JobPulseError) -> None:
        """Answer `refusal` and close the connection, after a moment in which what the client
        still sends is read and dropped: closed with unread data, the connection would be
        reset, and the client could lose the answer before reading it.
        """
        self._disarm()
        self._refusal = refusal
        self._body_pending = False
        self.logger.info("%s refused: %s", self._peer or "a client", refusal.message)
        self.transport.write(refusal_bytes(refusal, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def _disarm(self) -> None:
        for timer in (self._headers_timer, self._body_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._headers_timer = self._body_timer = self._linger_timer = None

    def _headers_expired(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_expired(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if self.pipeline or cycle is None or cycle.response_started:
            self.transport.close()  # an answer is under way (or done): nothing to say
            return
        cycle.disconnected = True  # the app's receive() now says so; whatever it sends is dropped
        cycle.message_event.set()
        message = f"the request body did not arrive within {self.body_timeout_s:g} s"
        self._refuse(RequestTimeoutError(message))


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn.run options that bound what one client can hold."""
    protocol = type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
            "send_timeout_s": settings.send_timeout_s,
            "max_header_bytes": settings.max_header_bytes,
            "max_headers": settings.max_headers,
            "max_per_client": settings.max_connections_per_client,
            "held": Counter(),
        },
    )
    return {
        "http": protocol,
        "timeout_keep_alive": settings.keep_alive_s,
        # Past this many connections and requests in flight, uvicorn answers 503.
        "limit_concurrency": settings.max_connections,
    }
