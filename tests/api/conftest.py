"""The API fixtures live in tests/conftest.py (the webhook tests use them too); here, the
two replicas of the API tests that need them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from jobpulse import Settings
from jobpulse.api import create_app
from tests.conftest import MakeKey

__all__ = ["MakeKey"]


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two apps on one PostgreSQL database (two replicas), a client of each."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(Settings(database_url=database_url))
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test")
            clients.append(await stack.enter_async_context(client))
        yield clients
