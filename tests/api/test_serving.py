"""What `serving=True` (the app of `jobpulse serve`) changes: the heap is settled at startup;
and what the served app refuses before reading a body: an API request without a valid key."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from jobpulse import Actor, Settings, UnavailableError
from jobpulse.api import create_app
from tests.conftest import MakeKey


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_a_served_app_freezes_its_startup_heap_and_collects_less_often(
    collector: None, database_url: str
) -> None:
    assert gc.get_freeze_count() == 0
    app = create_app(Settings(database_url=database_url, gc_threshold=12_345), serving=True)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # modules, the app, its database
        assert gc.get_threshold()[0] == 12_345


async def test_an_embedded_app_leaves_the_collector_alone(
    collector: None, database_url: str
) -> None:
    threshold = gc.get_threshold()
    app = create_app(Settings(database_url=database_url, gc_threshold=12_345))
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold


def _post(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope of a `POST /v1/jobs` announcing a 100 kB body."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "headers": [(b"host", b"x"), (b"content-length", b"100000"), *headers],
    }


@pytest.mark.parametrize(
    "authorization",
    [None, b"Bearer jp_not-a-key", b"Basic dXNlcjpwYXNz"],
    ids=["none", "unknown", "not-bearer"],
)
async def test_an_api_request_without_a_valid_key_is_refused_before_its_body(
    app: FastAPI, authorization: bytes | None
) -> None:
    never = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        await never.wait()  # the body never comes
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"authorization", authorization)] if authorization else []
    await asyncio.wait_for(app(_post(headers), receive, send), timeout=5)
    assert sent[0]["status"] == 401
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"]["code"] == "unauthorized"


async def test_an_api_request_with_a_valid_key_gets_its_body_read(
    app: FastAPI, make_key: MakeKey
) -> None:
    key = (await make_key("org-a", "alice"))["Authorization"].encode()
    body = b'{"status": "running"}' + b" " * 99_980
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"authorization", key), (b"content-type", b"application/json")]
    scope = _post(headers)
    scope["headers"] = [(b"content-length", str(len(body)).encode()), *headers]
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert sent[0]["status"] == 201, sent
    assert not pending


async def test_a_key_that_cannot_be_checked_before_the_body_is_answered_by_the_route(
    app: FastAPI, make_key: MakeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = await make_key("org-a", "alice")

    async def unreachable(_digest: str) -> Actor:
        raise UnavailableError("the database is unavailable")

    monkeypatch.setattr(app.state.keys, "authenticate_hash", unreachable)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://jobpulse.test") as http:
        response = await http.post("/v1/jobs", headers=headers, json={})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
