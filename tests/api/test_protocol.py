"""The limits of `serve`'s HTTP protocol, fed chunks exactly as a test lays them out: header
bytes are counted whether the headers end in the chunk or not, and only the headers' bytes.
(tests/e2e/test_connections.py tries the same limits over real sockets.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from jobpulse import Settings
from jobpulse.api.protocol import server_options


class Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.closed = False

    @property
    def written(self) -> bytes:
        return bytes(self.buffer)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.9", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buffer += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole body and answer its length."""
    size, more = 0, True
    while more:
        message: Message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def connection() -> tuple[asyncio.Protocol, Transport]:
    protocol_class = server_options(Settings())["http"]
    config = Config(app=echo_length, log_config=None, proxy_headers=False)
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def answers(transport: Transport, count: int) -> list[bytes]:
    """The status lines of the first `count` answers, once written."""
    for _ in range(200):
        if transport.written.count(b"HTTP/1.1 ") >= count:
            break
        await asyncio.sleep(0.01)
    return [line.split(b"\r\n", 1)[0] for line in transport.written.split(b"HTTP/1.1 ")[1:]]


async def test_the_next_requests_headers_are_counted_alone_after_a_large_body() -> None:
    protocol, transport = connection()
    body = b"x" * 100_000
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    get = b"GET / HTTP/1.1\r\nHost: x\r\nX-Partial: "
    protocol.data_received(post + body + get)  # one chunk, ending inside the GET's headers
    protocol.data_received(b"y\r\n\r\n")
    assert await answers(transport, 2) == [b"200 OK", b"200 OK"]
    assert transport.written.endswith(b"\r\n\r\n0")  # the GET's empty body
    protocol.connection_lost(None)


async def test_headers_ending_astride_two_chunks_count_no_body_bytes() -> None:
    protocol, transport = connection()
    body = b"x" * 100_000
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    protocol.data_received(post[:-1])  # "...\r\n\r"
    protocol.data_received(post[-1:] + body)
    assert await answers(transport, 1) == [b"200 OK"]
    assert transport.written.endswith(b"\r\n\r\n100000")
    protocol.connection_lost(None)


@pytest.mark.parametrize("chunk", [1024, 100 * 1024], ids=["trickled", "at-once"])
async def test_headers_past_the_limit_are_431_whether_they_end_or_not(chunk: int) -> None:
    protocol, transport = connection()
    header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (65 * 1024) + b"\r\n\r\n"
    fed = 0
    while fed < len(header) and not transport.written:
        protocol.data_received(header[fed : fed + chunk])
        fed += chunk
    assert await answers(transport, 1) == [b"431 Request Header Fields Too Large"]
    assert b'"code":"headers_too_large"' in transport.written
    assert fed <= 64 * 1024 + chunk  # refused as the limit passed, not when the headers ended
    protocol.connection_lost(None)


@pytest.mark.parametrize(
    ("fields", "status"), [(99, b"200 OK"), (100, b"431 Request Header Fields Too Large")]
)
async def test_a_request_has_100_header_fields_at_most(fields: int, status: bytes) -> None:
    protocol, transport = connection()
    extra = b"".join(b"X-%d: 1\r\n" % n for n in range(fields))
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    assert await answers(transport, 1) == [status]
    protocol.connection_lost(None)
