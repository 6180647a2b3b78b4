"""A real `jobpulse serve` follows provider batches registered by the CLI and the SDK, calls
back once when each ends, and forwards a cancel made through the CLI.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from jobpulse.client import JobPulse
from tests.e2e.conftest import cli, close, start
from tests.providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders, anthropic, openai
from tests.receiver import Receiver


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    """The fake providers, served from a thread of their own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    providers = FakeProviders()
    asyncio.run_coroutine_threadsafe(providers.start(), loop).result(10)
    yield providers
    asyncio.run_coroutine_threadsafe(providers.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_serve_follows_batches_from_the_cli_and_the_sdk(
    empty_database_url: str, fake: FakeProviders, receiver: Receiver
) -> None:
    fake.script(
        "anthropic",
        "msgbatch_1",
        anthropic("msgbatch_1", "in_progress", processing=2),
        anthropic("msgbatch_1", "ended", succeeded=2),
    )
    fake.results("msgbatch_1", [{"custom_id": "a", "result": {"type": "succeeded"}}] * 2)
    fake.script("openai", "batch_2", openai("batch_2", "in_progress", 3, 1, 0))
    fake.after_cancel[("openai", "batch_2")] = [openai("batch_2", "cancelled", 3, 1, 0)]
    server = start(
        empty_database_url,
        env={
            "JOBPULSE_ANTHROPIC_BASE_URL": fake.base_url,
            "JOBPULSE_OPENAI_BASE_URL": fake.base_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "OPENAI_API_KEY": OPENAI_KEY,
            "JOBPULSE_BATCH_POLL_INTERVAL_S": "0.2",
            "JOBPULSE_WEBHOOK_ALLOW_PRIVATE": "true",
        },
    )
    try:
        options = ("--url", server.url, "--key", server.admin_key)
        added = cli(
            "batches", "add", "--provider", "anthropic", "--batch-id", "msgbatch_1",
            "--callback-url", receiver.url, *options,
        )  # fmt: skip
        by_cli = added.stdout.strip()
        with JobPulse(server.url, server.admin_key) as client:
            by_sdk = client.track_batch("openai", "batch_2", metadata={"team": "search"}).id
            assert client.get_job(by_sdk).metadata["team"] == "search"
            deadline = time.monotonic() + 20
            while client.get_job(by_cli).status != "completed":
                assert time.monotonic() < deadline, client.get_job(by_cli)
                time.sleep(0.1)
            ended = client.get_job(by_cli)
            assert ended.metadata["results"]["counts"] == {"succeeded": 2}
            while client.get_job(by_sdk).status != "running":
                assert time.monotonic() < deadline, client.get_job(by_sdk)
                time.sleep(0.1)

            assert "cancelled" in cli("jobs", "cancel", by_sdk, *options).stdout
            while client.get_job(by_sdk).metadata.get("provider_status") != "cancelled":
                assert time.monotonic() < deadline, client.get_job(by_sdk)
                time.sleep(0.1)
        assert fake.cancels == [("openai", "batch_2")]
        assert receiver.got_one.wait(10)
        time.sleep(0.5)  # nothing more comes
        assert [r.json["type"] for r in receiver.received] == ["job.completed"]
        refused = cli("batches", "add", "--provider", "gemini", "--batch-id", "x", *options,
                      check=False)  # fmt: skip
        assert refused.returncode == 1
        assert "metadata.provider" in refused.stderr
    finally:
        close(server)
