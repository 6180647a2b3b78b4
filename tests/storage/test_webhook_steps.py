"""Steps: recorded once per step id, each firing the step-complete webhook with its key."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from jobpulse import Actor, JobManager, NotFoundError, Settings, ValidationError
from jobpulse.storage.sql_store import open_store
from jobpulse.webhooks.delivery import Deliverer, new_client
from tests.conftest import MakeKey
from tests.receiver import Receiver

ALICE = Actor("org-a", "alice")


async def test_steps_fire_the_step_webhook(database_url: str) -> None:
    receiver = Receiver()
    settings = Settings(
        database_url=database_url,
        webhook_allow_private=True,
        step_complete_webhook=receiver.url,
        step_complete_key="step-secret",
    )
    store = open_store(settings)
    jobs = JobManager(store, allow_private_callbacks=True, step_webhook=receiver.url)
    try:
        job = await jobs.create_job(ALICE, status="running")
        first = await jobs.record_step(
            ALICE, job.id, step_id="s1", status="success", metadata={"tool": "search"}
        )
        again = await jobs.record_step(ALICE, job.id, step_id="s1", status="failed")
        assert again == first  # a repeated step id is the same step
        generated = await jobs.record_step(ALICE, job.id, status="failed")
        assert generated["step_id"].startswith("step-")
        assert [s["step_id"] for s in await jobs.list_steps(ALICE, job.id)] == [
            "s1",
            generated["step_id"],
        ]
        async with new_client(settings) as http:
            deliverer = Deliverer(store, settings, http)
            deadline = time.monotonic() + 10
            while len(receiver.received) < 2:
                assert time.monotonic() < deadline
                await deliverer.run_once()
                await asyncio.sleep(0.02)
        bodies = sorted((r.json for r in receiver.received), key=lambda body: body["timestamp"])
        assert {k: bodies[0][k] for k in ("step_id", "job_id", "status", "metadata")} == {
            "step_id": "s1",
            "job_id": job.id,
            "status": "success",
            "metadata": {"tool": "search"},
        }
        assert all(r.headers["authorization"] == "Bearer step-secret" for r in receiver.received)
        with pytest.raises(ValidationError, match="step status"):
            await jobs.record_step(ALICE, job.id, status="done")
        with pytest.raises(NotFoundError):
            await jobs.record_step(Actor("org-b", "eve"), job.id, status="success")
    finally:
        receiver.close()
        await store.close()


async def test_steps_over_http(http: httpx.AsyncClient, make_key: MakeKey) -> None:
    me = await make_key("org-a", "alice")
    job = (await http.post("/v1/jobs", json={"status": "running"}, headers=me)).json()
    url = f"/v1/jobs/{job['id']}/steps"
    created = await http.post(url, json={"step_id": "a", "status": "success"}, headers=me)
    assert created.status_code == 201
    assert created.json()["step_id"] == "a"
    assert (await http.post(url, json={"status": "maybe"}, headers=me)).status_code == 422
    listed = (await http.get(url, headers=me)).json()
    assert [step["step_id"] for step in listed] == ["a"]
    callbacks = await http.get(f"/v1/jobs/{job['id']}/callbacks", headers=me)
    assert callbacks.json() == []
    retry = await http.post(f"/v1/jobs/{job['id']}/callbacks/retry", headers=me)
    assert retry.status_code == 404
    assert retry.json()["error"]["code"] == "not_found"
