"""/readyz follows the database: 503 while it cannot be reached, 200 again once it is back,
without a restart. The database is cut off by stopping a TCP proxy in front of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Settings
from jobpulse.api import create_app
from tests.conftest import POSTGRES_URL, _postgres_database


class Proxy:
    """A loopback TCP proxy to PostgreSQL that can be cut and restored on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def postgres_database_url(postgres_template: str) -> Iterator[str]:
    yield from _postgres_database(postgres_template)


@pytest.fixture
async def proxied_app(postgres_database_url: str) -> AsyncIterator[tuple[FastAPI, Proxy]]:
    direct = postgres_database_url
    target_port = int(POSTGRES_URL.split("@")[1].split("/")[0].split(":")[1])
    proxy = Proxy(target_port)
    await proxy.start()
    url = direct.replace(f":{target_port}/", f":{proxy.port}/")
    app = create_app(Settings(database_url=url))
    try:
        async with app.router.lifespan_context(app):
            yield app, proxy
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()


async def ready(client: httpx.AsyncClient, expected: int, seconds: float = 20) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get("/readyz")
        if response.status_code == expected or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.2)


async def test_readyz_follows_the_database(proxied_app: tuple[FastAPI, Proxy]) -> None:
    app, proxy = proxied_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as client:
        assert (await client.get("/readyz")).status_code == 200
        await proxy.stop()
        down = await ready(client, 503)
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "unavailable"
        assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
        await proxy.start()
        back = await ready(client, 200)
        assert back.status_code == 200
        assert back.json()["status"] == "ready"


async def test_requests_during_an_outage_are_503_with_retry_after(
    proxied_app: tuple[FastAPI, Proxy],
) -> None:
    app, proxy = proxied_app
    _key, secret = await app.state.keys.create(organization_id="org-a", user_id="alice")
    headers = {"Authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as client:
        assert (await client.get("/v1/jobs", headers=headers)).status_code == 200
        await proxy.stop()
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/readyz")):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"]["code"] == "unavailable"
            assert int(response.headers["retry-after"]) >= 1
        await proxy.start()
        assert (await ready(client, 200)).status_code == 200
        assert (await client.post("/v1/jobs", headers=headers, json={})).status_code == 201


class FakePostgres:
    """A loopback server that speaks just enough of PostgreSQL's protocol to refuse every
    connection with `sqlstate` (or, with None, to accept it and then say nothing at all).
    """

    def __init__(self, sqlstate: str | None, message: str = "") -> None:
        self.sqlstate = sqlstate
        self.message = message
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> FakePostgres:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            length, code = struct.unpack("!ii", await reader.readexactly(8))
            if code == 80877103:  # SSLRequest: no TLS here, then the startup message
                writer.write(b"N")
                length = struct.unpack("!i", await reader.readexactly(4))[0]
                await reader.readexactly(length - 4)
            else:
                await reader.readexactly(length - 8)
            if self.sqlstate is None:
                await reader.read()  # hold the connection, answer nothing
            else:
                writer.write(self._error())
                await writer.drain()
        writer.transport.abort()
        self.writers.discard(writer)

    def _error(self) -> bytes:
        assert self.sqlstate is not None
        fields = (b"S", "FATAL"), (b"V", "FATAL"), (b"C", self.sqlstate), (b"M", self.message)
        body = b"".join(kind + value.encode() + b"\0" for kind, value in fields) + b"\0"
        return b"E" + struct.pack("!i", len(body) + 4) + body


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("57P03", "the database system is starting up"),
        ("57P01", "terminating connection due to administrator command"),
        ("53300", "sorry, too many clients already"),
        ("08006", "connection failure"),
        (None, "no answer"),
    ],
)
async def test_a_database_that_cannot_serve_is_503_with_retry_after(
    sqlstate: str | None, message: str
) -> None:
    async with FakePostgres(sqlstate, message) as fake:
        url = f"postgresql://postgres@127.0.0.1:{fake.port}/postgres"
        app = create_app(Settings(database_url=url, database_timeout_s=0.5))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = {"Authorization": "Bearer jp_anything"}
                for method, path in (("GET", "/readyz"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs")):
                    response = await client.request(method, path, headers=headers, json={})
                    assert response.status_code == 503, (path, response.text)
                    assert response.json()["error"]["code"] == "unavailable"
                    assert response.headers["retry-after"] == "2"
