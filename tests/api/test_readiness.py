"""/readyz follows the database: 503 while it cannot be reached, 200 again once it is back,
without a restart. The database is cut off by stopping a TCP proxy in front of PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
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
