"""The real app served on loopback by uvicorn on a thread of its own (so that synchronous SDK
code can block on it), and a transport that makes chosen requests fail as jobpulse or the
network would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import uvicorn

from jobpulse.api import create_app
from jobpulse.config import Settings

T = TypeVar("T")
#: A loopback port nothing listens on (jobpulse unreachable).
NOWHERE = "http://127.0.0.1:9"
#: The statuses a job ends in.
ENDED = frozenset({"completed", "failed", "cancelled", "expired"})
#: What jobpulse answers when its database cannot serve (see api/errors.py).
UNAVAILABLE = {"error": {"code": "unavailable", "message": "the database cannot be reached"}}


class Served:
    """`create_app(settings)` under uvicorn on 127.0.0.1, on an event loop of its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server took too long to start"
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def _serve(self) -> None:
        self._loop.run_until_complete(self._serving())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    async def _serving(self) -> None:
        await self._server.serve()
        left = asyncio.all_tasks() - {asyncio.current_task()}  # streams' watchers, say
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def call(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` on the server's loop (to reach the app's state, say)."""

        async def run() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def key(self, org: str = "org-a", user: str = "alice") -> str:
        """The secret of a new member key."""
        _key, secret = self.call(self.app.state.keys.create(organization_id=org, user_id=user))
        return str(secret)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._loop.close()


@dataclass
class Faults(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Passes requests on to the real server, except those it is told to fail: those in
    `unavailable`, (method, a part of the path), are answered 503 as jobpulse answers when its
    database cannot serve, and with `down` every request fails to connect.
    """

    unavailable: set[tuple[str, str]] = field(default_factory=set)
    down: bool = False
    #: The requests that were failed, as (method, path).
    failed: list[tuple[str, str]] = field(default_factory=list)
    _sync: httpx.HTTPTransport = field(default_factory=httpx.HTTPTransport)
    _async: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    def _fault(self, request: httpx.Request) -> httpx.Response | None:
        if self.down:
            self.failed.append((request.method, request.url.path))
            raise httpx.ConnectError("connection refused", request=request)
        for method, part in self.unavailable:
            if request.method == method and part in request.url.path:
                self.failed.append((request.method, request.url.path))
                return httpx.Response(503, json=UNAVAILABLE, request=request)
        return None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._fault(request) or self._sync.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self._fault(request) or await self._async.handle_async_request(request)

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._async.aclose()
