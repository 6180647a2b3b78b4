"""The API in process, on each database, with its lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Settings
from jobpulse.api import create_app

MakeKey = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(database_url=database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as client:
        yield client


@pytest.fixture
def make_key(app: FastAPI) -> MakeKey:
    """Headers carrying a new key for (org, user), member unless admin=True."""

    async def make(org: str, user: str, admin: bool = False) -> dict[str, str]:
        _key, secret = await app.state.keys.create(
            organization_id=org, user_id=user, is_admin=admin
        )
        return {"Authorization": f"Bearer {secret}"}

    return make
