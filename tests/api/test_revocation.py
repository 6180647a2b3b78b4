"""A revoked key stops working at once on the replica that revoked it and, on PostgreSQL,
on every other replica as soon as the revocation commits (NOTIFY), not a cache period later.
The streams a key opened, the dashboard's included, close within seconds of its revocation
on every replica; signing out ends a dashboard session (its cookie, replayed, signs no one
in) and its live streams."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Actor, Settings
from jobpulse.grants import Grants
from jobpulse.keys import CACHE_SECONDS, KeyManager, hash_key
from jobpulse.storage import sessions
from jobpulse.storage.sql_store import open_store
from tests.api.test_stream import Listener, listen, serve


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


async def ended(listener: Listener, within_s: float) -> float:
    """Seconds until the stream ends (AssertionError past `within_s`)."""
    assert listener.task is not None
    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.shield(listener.task), within_s)
    except TimeoutError:
        raise AssertionError(f"the stream is still open after {within_s} s") from None
    return time.monotonic() - started


async def sign_in(url: str, secret: str) -> dict[str, str]:
    """A dashboard session of the key: the Cookie header a browser would send."""
    async with httpx.AsyncClient(base_url=url) as browser:
        await browser.get("/login")
        answer = await browser.post(
            "/login", data={"key": secret, "csrf": browser.cookies["jobpulse_csrf"]}
        )
        assert answer.status_code == 303
        return {"Cookie": f"jobpulse_session={browser.cookies['jobpulse_session']}"}


async def test_open_streams_close_within_seconds_of_their_keys_revocation(
    database_url: str,
) -> None:
    async with serve(database_url) as served:
        keys = served.app.state.keys
        key, secret = await keys.create(organization_id="org-a", user_id="alice")
        bearer = {"Authorization": f"Bearer {secret}"}
        api = await listen(f"{served.url}/v1/jobs/stream", bearer)
        dashboard = await listen(f"{served.url}/live", await sign_in(served.url, secret))
        other = await listen(f"{served.url}/v1/jobs/stream", await served.key("org-a", "bob"))
        job = await served.jobs.create_job(Actor("org-a", "alice"))
        for listener in (api, dashboard):
            assert [e.data["job_id"] for e in await listener.wait_for(1)] == [job.id]
        # Revoked by another process (`jobpulse keys revoke`): on SQLite nothing tells
        # the server, on PostgreSQL a NOTIFY does.
        elsewhere = KeyManager(open_store(Settings(database_url=database_url)))
        try:
            await elsewhere.revoke(key.id)
        finally:
            await elsewhere.store.close()
        for listener in (api, dashboard):
            took = await ended(listener, within_s=5.0)
            print(f"closed {took:.2f} s after the revocation")
            assert [e.event for e in listener.received] == [None, "revoked"]
        async with httpx.AsyncClient(base_url=served.url) as http:
            again = await http.get("/v1/jobs/stream", headers=bearer)
            assert again.status_code == 401
        assert other.task is not None
        assert not other.task.done(), "another key's stream was closed too"
        assert keys.grants.held == 1
        await other.close()


async def test_a_stream_on_one_replica_closes_when_another_revokes_its_key(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    async with serve(database_url) as first, serve(database_url) as second:
        key, secret = await first.app.state.keys.create(organization_id="org-a", user_id="al")
        api = await listen(f"{second.url}/v1/jobs/stream", {"Authorization": f"Bearer {secret}"})
        dashboard = await listen(f"{second.url}/live", await sign_in(second.url, secret))
        await asyncio.sleep(0.3)  # the listeners of both replicas are connected
        await first.app.state.keys.revoke(key.id)
        for listener in (api, dashboard):
            took = await ended(listener, within_s=5.0)
            print(f"closed {took:.2f} s after the revocation on the other replica")
            assert listener.received[-1].event == "revoked"
        assert second.app.state.keys.grants.held == 0


async def test_signing_out_ends_the_session_and_its_streams(database_url: str) -> None:
    async with serve(database_url) as served:
        _key, secret = await served.app.state.keys.create(organization_id="org-a", user_id="al")
        async with httpx.AsyncClient(base_url=served.url) as browser:
            await browser.get("/login")
            planted = browser.cookies["jobpulse_csrf"]
            answer = await browser.post("/login", data={"key": secret, "csrf": planted})
            assert answer.status_code == 303
            renewed = browser.cookies["jobpulse_csrf"]
            assert renewed != planted, "the CSRF token is renewed at sign-in"
            session = {"Cookie": f"jobpulse_session={browser.cookies['jobpulse_session']}"}
            live = await listen(f"{served.url}/live", session)
            second = await listen(f"{served.url}/live", await sign_in(served.url, secret))
            assert (await browser.get("/jobs")).status_code == 200
            stale = await browser.post("/logout", data={"csrf": planted})
            assert stale.status_code == 403, "the token from before sign-in is void"
            out = await browser.post("/logout", data={"csrf": renewed})
            assert out.status_code == 303
        took = await ended(live, within_s=5.0)
        print(f"the live stream closed {took:.2f} s after signing out")
        assert live.received[-1].event == "revoked"
        # The old cookie, replayed (by an attacker who kept it), signs no one in.
        async with httpx.AsyncClient(base_url=served.url) as replay:
            for path in ("/", "/jobs", "/live"):
                again = await replay.get(path, headers=session)
                assert again.status_code == 303, path
                assert again.headers["location"].startswith("/login")
        # The key's other session, in another browser, goes on.
        assert second.task is not None
        assert not second.task.done()
        await second.close()


async def test_signing_out_on_one_replica_ends_the_session_on_another(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    shared = {"session_secret": "one secret for both replicas"}
    async with serve(database_url, **shared) as first, serve(database_url, **shared) as second:
        _key, secret = await first.app.state.keys.create(organization_id="org-a", user_id="al")
        async with httpx.AsyncClient(base_url=first.url) as browser:
            await browser.get("/login")
            csrf = browser.cookies["jobpulse_csrf"]
            await browser.post("/login", data={"key": secret, "csrf": csrf})
            session = {"Cookie": f"jobpulse_session={browser.cookies['jobpulse_session']}"}
            live = await listen(f"{second.url}/live", session)  # the same session, elsewhere
            await asyncio.sleep(0.3)  # the listeners of both replicas are connected
            out = await browser.post("/logout", data={"csrf": browser.cookies["jobpulse_csrf"]})
            assert out.status_code == 303
        took = await ended(live, within_s=5.0)
        print(f"the other replica's live stream closed {took:.2f} s after signing out")
        assert live.received[-1].event == "revoked"
        async with httpx.AsyncClient(base_url=second.url) as replay:
            assert (await replay.get("/jobs", headers=session)).status_code == 303


async def test_a_grant_ends_with_its_sessions_expiry_or_its_keys_revocation(
    database_url: str,
) -> None:
    store = open_store(Settings(database_url=database_url))
    keys = KeyManager(store)
    try:
        key, secret = await keys.create(organization_id="org-a", user_id="al")
        now = datetime.now(UTC)
        started = await store.database.write(
            sessions.start_session, "s" * 64, hash_key(secret), now, now + timedelta(hours=1)
        )
        assert started
        later = now + timedelta(minutes=59)
        grants = Grants(store, clock=lambda: later)
        by_key, by_session = grants.hold(hash_key(secret)), grants.hold(hash_key(secret), "s" * 64)
        closed: list[str] = []
        by_session.on_end(lambda: closed.append("session"))
        await grants.recheck()
        assert closed == []
        later = now + timedelta(hours=1, seconds=1)  # the session has expired
        await grants.recheck()
        assert closed == ["session"]
        assert not by_key.ended
        assert grants.held == 1
        await keys.revoke(key.id)
        await grants.recheck()
        assert by_key.ended
        assert grants.held == 0
        # A session of a revoked key cannot start.
        again = await store.database.write(
            sessions.start_session, "t" * 64, hash_key(secret), now, now + timedelta(hours=1)
        )
        assert not again
    finally:
        await store.close()
