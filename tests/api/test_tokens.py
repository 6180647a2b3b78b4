"""Scoped read-only tokens (POST /v1/tokens) on SQLite and PostgreSQL: a token reads the jobs
of its scope, by header or `?access_token=`, and nothing else; it expires, dies with its key
(on every replica), and its open streams close then. CORS answers only the listed origins.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jobpulse import Settings
from jobpulse.api import create_app
from jobpulse.keys import CACHE_SECONDS
from tests.api.test_api import error_of
from tests.api.test_revocation import ended
from tests.api.test_stream import Listener, listen, moves, serve
from tests.conftest import MakeKey

Headers = dict[str, str]


async def mint(http: httpx.AsyncClient, key: Headers, **body: Any) -> str:
    """A new token's secret (the answer checked)."""
    answer = await http.post("/v1/tokens", json=body, headers=key)
    assert answer.status_code == 201, answer.text
    token = answer.json()
    assert token["token"].startswith("jpt_")
    return str(token["token"])


def bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


async def new_job(http: httpx.AsyncClient, key: Headers, **body: Any) -> dict[str, Any]:
    answer = await http.post("/v1/jobs", json=body, headers=key)
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


async def test_a_token_for_one_job_reads_it_and_nothing_else(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    bob = await make_key("org-a", "bob")
    eve = await make_key("org-b", "eve")
    job_a = await new_job(http, alice, job_type="agent", status="running")
    job_b = await new_job(http, alice, job_type="agent")
    bobs = await new_job(http, bob, job_type="agent")
    eves = await new_job(http, eve, job_type="agent")
    answer = await http.post("/v1/tokens", json={"job_id": job_a["id"]}, headers=alice)
    assert answer.status_code == 201, answer.text
    minted = answer.json()
    assert set(minted) == {"token", "expires_at", "scope"}
    assert minted["scope"] == {"job_id": job_a["id"]}
    expires_at = datetime.fromisoformat(minted["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(seconds=900))) < timedelta(seconds=30)
    token = minted["token"]

    # Job A, by header and by query parameter, as its owner sees it.
    owner_view = (await http.get(f"/v1/jobs/{job_a['id']}", headers=alice)).json()
    by_header = await http.get(f"/v1/jobs/{job_a['id']}", headers=bearer(token))
    assert by_header.status_code == 200
    assert by_header.json() == owner_view
    by_query = await http.get(f"/v1/jobs/{job_a['id']}", params={"access_token": token})
    assert by_query.json() == owner_view

    # Another job of the same owner, another user's, another organization's, a missing one:
    # all alike not found.
    for other in (job_b["id"], bobs["id"], eves["id"], "job-missing"):
        error_of(await http.get(f"/v1/jobs/{other}", headers=bearer(token)), 404, "not_found")
        error_of(
            await http.get(f"/v1/jobs/{other}", params={"access_token": token}), 404, "not_found"
        )
        error_of(
            await http.get(f"/v1/jobs/{other}/stream", headers=bearer(token)), 404, "not_found"
        )

    # Lists, counts, figures, history and every write are forbidden, and change nothing.
    job_path = f"/v1/jobs/{job_a['id']}"
    refused = [
        ("GET", "/v1/jobs", None),
        ("GET", "/v1/jobs/count", None),
        ("GET", "/v1/stats", None),
        ("GET", f"{job_path}/events", None),
        ("GET", f"{job_path}/callbacks", None),
        ("POST", "/v1/jobs", {"job_type": "sneaky"}),
        ("PATCH", job_path, {"stop_reason": "end_turn"}),
        ("POST", f"{job_path}/cancel", None),
        ("POST", f"{job_path}/heartbeat", None),
        ("POST", f"{job_path}/first-token", None),
        ("POST", f"{job_path}/steps", {"status": "success"}),
        ("DELETE", job_path, None),
        ("POST", "/v1/tokens", {"job_id": job_a["id"]}),
    ]
    for method, path, body in refused:
        for credentials in ({"headers": bearer(token)}, {"params": {"access_token": token}}):
            answer = await http.request(method, path, json=body, **credentials)
            error_of(answer, 403, "forbidden")
    assert (await http.get(job_path, headers=alice)).json() == owner_view
    listed = (await http.get("/v1/jobs", headers=alice)).json()
    assert sorted(job["id"] for job in listed) == sorted([job_a["id"], job_b["id"]])


async def test_a_token_for_a_type_and_metadata_reads_those_of_its_keys_view(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    bob = await make_key("org-a", "bob")
    admin = await make_key("org-a", "root", admin=True)
    red = {"job_type": "agent", "metadata": {"team": "red", "step": 1}}
    alices_red = await new_job(http, alice, **red)
    bobs_red = await new_job(http, bob, **red)
    alices_blue = await new_job(http, alice, job_type="agent", metadata={"team": "blue"})
    alices_other = await new_job(http, alice, job_type="cron", metadata={"team": "red"})
    scope = {"job_type": "agent", "metadata": {"team": "red"}}
    members = await mint(http, alice, **scope)
    admins = await mint(http, admin, **scope)
    typed = await mint(http, alice, job_type="cron")

    expected = {
        (members, alices_red["id"]): 200,
        (members, bobs_red["id"]): 404,  # a member's token sees its own jobs only
        (members, alices_blue["id"]): 404,
        (members, alices_other["id"]): 404,
        (admins, alices_red["id"]): 200,
        (admins, bobs_red["id"]): 200,  # an admin's sees the organization's
        (admins, alices_blue["id"]): 404,
        (typed, alices_other["id"]): 200,
        (typed, alices_red["id"]): 404,
    }
    found = {
        (token, job_id): (await http.get(f"/v1/jobs/{job_id}", headers=bearer(token))).status_code
        for token, job_id in expected
    }
    assert found == expected


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "validation_error"),
        ({"ttl_s": 60}, 422, "validation_error"),
        ({"job_id": "job-x", "job_type": "agent"}, 422, "validation_error"),
        ({"job_type": "agent", "ttl_s": 0}, 422, "validation_error"),
        ({"job_type": "agent", "ttl_s": 86_401}, 422, "validation_error"),
        ({"job_type": "agent", "ttl_s": "900"}, 422, "validation_error"),
        ({"job_type": "agent", "ttl_s": 1.5}, 422, "validation_error"),
        ({"metadata": {"team": 5}}, 422, "validation_error"),
        ({"metadata": {"bad key!": "x"}}, 422, "validation_error"),
        ({"job_type": ""}, 422, "validation_error"),
        ({"job_type": "a\u0000b"}, 422, "validation_error"),
        ({"job_id": "job-\u0000"}, 422, "validation_error"),
        ({"metadata": {"team": "\ud800"}}, 422, "validation_error"),
        ({"job_type": "agent", "user_id": "bob"}, 422, "validation_error"),
        ({"job_id": "job-missing"}, 404, "not_found"),
    ],
)
async def test_a_bad_request_for_a_token_gets_a_clear_error(
    http: httpx.AsyncClient, make_key: MakeKey, body: dict[str, Any], status: int, code: str
) -> None:
    alice = await make_key("org-a", "alice")
    sent = json.dumps(body)  # ASCII: a lone surrogate travels escaped, as JSON allows
    headers = alice | {"Content-Type": "application/json"}
    error_of(await http.post("/v1/tokens", content=sent, headers=headers), status, code)


async def test_a_token_only_for_a_job_its_key_can_see(
    http: httpx.AsyncClient, make_key: MakeKey
) -> None:
    alice = await make_key("org-a", "alice")
    bob = await make_key("org-a", "bob")
    eve = await make_key("org-b", "eve")
    admin = await make_key("org-a", "root", admin=True)
    bobs = await new_job(http, bob)
    error_of(
        await http.post("/v1/tokens", json={"job_id": bobs["id"]}, headers=alice), 404, "not_found"
    )
    error_of(
        await http.post("/v1/tokens", json={"job_id": bobs["id"]}, headers=eve), 404, "not_found"
    )
    token = await mint(http, admin, job_id=bobs["id"], ttl_s=86_400)
    assert (await http.get(f"/v1/jobs/{bobs['id']}", headers=bearer(token))).status_code == 200
    error_of(await http.post("/v1/tokens", json={"job_id": bobs["id"]}), 401, "unauthorized")


async def test_an_expired_token_is_refused(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    alice = await make_key("org-a", "alice")
    job = await new_job(http, alice)
    token = await mint(http, alice, job_id=job["id"], ttl_s=1)
    assert (await http.get(f"/v1/jobs/{job['id']}", headers=bearer(token))).status_code == 200
    await asyncio.sleep(1.1)
    error_of(await http.get(f"/v1/jobs/{job['id']}", headers=bearer(token)), 401, "unauthorized")
    expired = await http.get(f"/v1/jobs/{job['id']}/stream", params={"access_token": token})
    error_of(expired, 401, "unauthorized")
    for wrong in ("jpt_not-a-token", "jp_a-key-in-the-url", ""):
        answer = await http.get(f"/v1/jobs/{job['id']}", params={"access_token": wrong})
        error_of(answer, 401, "unauthorized")
    both = await http.get(f"/v1/jobs/{job['id']}", params={"access_token": token}, headers=alice)
    error_of(both, 422, "validation_error")


async def test_a_revoked_key_takes_its_tokens_with_it(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    keys = app.state.keys
    key, secret = await keys.create(organization_id="org-a", user_id="alice")
    _other, other_secret = await keys.create(organization_id="org-a", user_id="alice")
    alice, also_alice = bearer(secret), bearer(other_secret)
    job = await new_job(http, alice)
    token = await mint(http, alice, job_id=job["id"])
    survivor = await mint(http, also_alice, job_id=job["id"])
    await keys.revoke(key.id)
    error_of(await http.get(f"/v1/jobs/{job['id']}", headers=bearer(token)), 401, "unauthorized")
    assert (await http.get(f"/v1/jobs/{job['id']}", headers=bearer(survivor))).status_code == 200
    error_of(
        await http.post("/v1/tokens", json={"job_id": job["id"]}, headers=alice),
        401,
        "unauthorized",
    )


async def test_a_revocation_on_one_replica_kills_the_keys_tokens_on_the_other(
    replicas: list[httpx.AsyncClient],
) -> None:
    first, second = replicas
    transport = first._transport
    assert isinstance(transport, httpx.ASGITransport)
    keys = transport.app.state.keys  # type: ignore[attr-defined]
    key, secret = await keys.create(organization_id="org-a", user_id="alice")
    job = await new_job(first, bearer(secret))
    token = await mint(first, bearer(secret), job_id=job["id"])
    await asyncio.sleep(0.5)  # both listeners connected
    for client in replicas:  # each replica now trusts the token's key from its cache
        assert (await client.get(f"/v1/jobs/{job['id']}", headers=bearer(token))).status_code == 200
    started = time.monotonic()
    await keys.revoke(key.id)
    while (await second.get(f"/v1/jobs/{job['id']}", headers=bearer(token))).status_code != 401:
        assert time.monotonic() - started < CACHE_SECONDS / 5, "the other replica still trusts it"
        await asyncio.sleep(0.01)


async def test_a_token_follows_its_scope_live_and_its_streams_close_with_it(
    database_url: str,
) -> None:
    async with serve(database_url) as served, httpx.AsyncClient(base_url=served.url) as http:
        key, secret = await served.app.state.keys.create(organization_id="org-a", user_id="al")
        alice = bearer(secret)
        bob = await served.key("org-a", "bob")
        job = await new_job(http, alice, job_type="agent")
        other = await new_job(http, alice, job_type="agent")
        one = await mint(http, alice, job_id=job["id"])
        typed = await mint(http, alice, job_type="agent")
        stream = f"{served.url}/v1/jobs/stream"
        answer = await http.post(
            "/v1/tokens", json={"job_id": job["id"], "ttl_s": 4}, headers=alice
        )
        short, short_expiry = (
            answer.json()["token"],
            datetime.fromisoformat(answer.json()["expires_at"]),
        )
        streams: dict[str, Listener] = {
            "short": await listen(stream, {}, {"access_token": short}),
            "job": await listen(
                f"{served.url}/v1/jobs/{job['id']}/stream", {}, {"access_token": one}
            ),
            "all": await listen(stream, {}, {"access_token": one}),
            "typed": await listen(stream, bearer(typed)),
            "narrowed": await listen(stream, {}, {"access_token": typed, "status": "cancelled"}),
            "elsewhere": await listen(stream, {}, {"access_token": typed, "job_type": "cron"}),
        }
        short_task = streams["short"].task
        assert short_task is not None

        async def when_it_ends() -> datetime:
            await asyncio.shield(short_task)
            return datetime.now(UTC)

        short_end = asyncio.create_task(when_it_ends())
        bobs = await new_job(http, bob, job_type="agent")
        await http.patch(f"/v1/jobs/{bobs['id']}", json={"status": "running"}, headers=bob)
        await http.patch(f"/v1/jobs/{job['id']}", json={"status": "running"}, headers=alice)
        await http.post(f"/v1/jobs/{other['id']}/cancel", headers=alice)
        await http.patch(f"/v1/jobs/{job['id']}", json={"stop_reason": "end_turn"}, headers=alice)
        mine = [(job["id"], "created", "running"), (job["id"], "running", "completed")]
        assert moves(await streams["job"].wait_for(2)) == mine
        assert moves(await streams["all"].wait_for(2)) == mine
        assert sorted(moves(await streams["typed"].wait_for(3))) == sorted(
            [*mine, (other["id"], "created", "cancelled")]
        )
        assert moves(await streams["narrowed"].wait_for(1)) == [
            (other["id"], "created", "cancelled")
        ]
        late = (await asyncio.wait_for(short_end, 8.0) - short_expiry).total_seconds()
        print(f"the 4 s token's stream ended {late:.2f} s after the token expired")
        assert late >= 0, "the stream ended before its token expired"
        assert [e.event for e in streams["short"].received][-1] == "expired"
        await asyncio.sleep(0.3)
        assert len(streams["all"].received) == 2, "another job came through"
        assert streams["elsewhere"].received == []

        await served.app.state.keys.revoke(key.id)
        for name in ("job", "all", "typed", "narrowed", "elsewhere"):
            await ended(streams[name], within_s=5.0)
            assert streams[name].received[-1].event == "revoked", name
        assert served.app.state.keys.grants.held == 0


async def test_a_token_stream_on_one_replica_closes_when_another_revokes_its_key(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    async with serve(database_url) as first, serve(database_url) as second:
        key, secret = await first.app.state.keys.create(organization_id="org-a", user_id="al")
        async with httpx.AsyncClient(base_url=first.url) as http:
            job = await new_job(http, bearer(secret))
            token = await mint(http, bearer(secret), job_id=job["id"])
        url = f"{second.url}/v1/jobs/{job['id']}/stream"
        followed = await listen(url, {}, {"access_token": token})
        await asyncio.sleep(0.3)  # the listeners of both replicas are connected
        await first.app.state.keys.revoke(key.id)
        took = await ended(followed, within_s=5.0)
        print(f"closed {took:.2f} s after the revocation on the other replica")
        assert followed.received[-1].event == "revoked"
        async with httpx.AsyncClient(base_url=second.url) as http:
            error_of(await http.get(url, params={"access_token": token}), 401, "unauthorized")


async def test_cors_answers_the_listed_origins_only(database_url: str) -> None:
    listed, other = "http://app.example", "http://evil.example"
    settings = Settings(database_url=database_url, cors_origins=f"{listed}, http://two.example")
    for app, allowed in (
        (create_app(settings), True),
        (create_app(Settings(database_url=database_url)), False),
    ):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://jobpulse.test"
            ) as http:
                _key, secret = await app.state.keys.create(organization_id="org-a", user_id="al")
                job = await new_job(http, bearer(secret))
                token = await mint(http, bearer(secret), job_id=job["id"])
                path = f"/v1/jobs/{job['id']}"
                read = await http.get(
                    path, params={"access_token": token}, headers={"Origin": listed}
                )
                assert read.status_code == 200
                assert read.headers.get("access-control-allow-origin") == (
                    listed if allowed else None
                )
                refused = await http.get(path, headers={"Origin": listed})  # no token: 401
                assert refused.status_code == 401
                assert refused.headers.get("access-control-allow-origin") == (
                    listed if allowed else None
                )
                stranger = await http.get(
                    path, params={"access_token": token}, headers={"Origin": other}
                )
                assert stranger.status_code == 200
                assert "access-control-allow-origin" not in stranger.headers
                preflight = {
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization, last-event-id",
                }
                asked = await http.options(path, headers={"Origin": listed, **preflight})
                if allowed:
                    assert asked.status_code == 200
                    assert asked.headers["access-control-allow-origin"] == listed
                    assert "authorization" in asked.headers["access-control-allow-headers"].lower()
                else:
                    assert "access-control-allow-origin" not in asked.headers
                strange = await http.options(path, headers={"Origin": other, **preflight})
                assert "access-control-allow-origin" not in strange.headers
                # The dashboard answers no other origin.
                page = await http.get("/login", headers={"Origin": listed})
                assert "access-control-allow-origin" not in page.headers
