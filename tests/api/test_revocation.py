"""A revoked key stops working at once on the replica that revoked it and, on PostgreSQL,
on every other replica as soon as the revocation commits (NOTIFY), not a cache period later."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Settings
from jobpulse.api import create_app
from jobpulse.keys import CACHE_SECONDS


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
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


def app_of(client: httpx.AsyncClient) -> FastAPI:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    return app


async def test_a_revocation_reaches_every_replica_at_once(
    replicas: list[httpx.AsyncClient],
) -> None:
    first, second = replicas
    keys = app_of(first).state.keys
    key, secret = await keys.create(organization_id="org-a", user_id="alice")
    headers = {"Authorization": f"Bearer {secret}"}
    await asyncio.sleep(0.5)  # both listeners connected
    for client in replicas:  # each replica now trusts the key from its cache
        assert (await client.get("/v1/jobs", headers=headers)).status_code == 200
    started = time.monotonic()
    await keys.revoke(key.id)
    assert (await first.get("/v1/jobs", headers=headers)).status_code == 401
    while (await second.get("/v1/jobs", headers=headers)).status_code != 401:
        assert time.monotonic() - started < CACHE_SECONDS / 5, "the other replica still trusts it"
        await asyncio.sleep(0.01)
