"""Scoped tokens on two `jobpulse serve` processes of one PostgreSQL database: a token minted
on one reads on the other, and `jobpulse keys revoke` (a third process) kills it on both:
its reads are refused and its open streams close within seconds.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from jobpulse import Settings
from jobpulse.keys import KeyManager
from jobpulse.storage.sql_store import open_store
from tests.api.test_stream import listen
from tests.e2e.conftest import cli, close, start


def test_the_keys_revoke_command_kills_a_token_on_every_replica(empty_database_url: str) -> None:
    url = empty_database_url
    if not url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    servers = [start(url), start(url, expect_key=False)]
    try:
        secret = cli("keys", "create", "--user", "al", "--org", "org-a", "--database-url", url)
        key = {"Authorization": f"Bearer {secret.stdout.strip()}"}
        first = servers[0].url
        job = httpx.post(f"{first}/v1/jobs", json={"status": "running"}, headers=key).json()
        minted = httpx.post(f"{first}/v1/tokens", json={"job_id": job["id"]}, headers=key)
        assert minted.status_code == 201, minted.text
        token = {"access_token": minted.json()["token"]}
        for server in servers:
            read = httpx.get(f"{server.url}/v1/jobs/{job['id']}", params=token)
            assert read.status_code == 200, read.text

        async def key_id() -> str:
            keys = KeyManager(open_store(Settings(database_url=url)))
            try:
                prefix = key["Authorization"][7:17]
                return next(k.id for k in await keys.list() if k.prefix == prefix)
            finally:
                await keys.store.close()

        revoked_key = asyncio.run(key_id())

        async def revoke_while_streaming() -> list[float]:
            streams = [
                await listen(f"{server.url}/v1/jobs/{job['id']}/stream", {}, token)
                for server in servers
            ]
            await asyncio.to_thread(cli, "keys", "revoke", revoked_key, "--database-url", url)
            revoked = time.monotonic()
            took = []
            for stream in streams:
                assert stream.task is not None
                await asyncio.wait_for(stream.task, 5.0)
                took.append(time.monotonic() - revoked)
                assert stream.received[-1].event == "revoked"
            return took

        took = asyncio.run(revoke_while_streaming())
        print(f"token streams closed {', '.join(f'{t:.2f}' for t in took)} s after the command")
        for server in servers:
            refused = httpx.get(f"{server.url}/v1/jobs/{job['id']}", params=token)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
    finally:
        for server in servers:
            close(server)
