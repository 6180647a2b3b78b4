"""LLM batch polling: one full round over 1,000 due batches against the fake providers
answering in 50 ms, next to the ideal (1,000 x 50 ms / concurrency) and to a raw aiohttp
loop GETting the same batches with the same concurrency (the same pacing, nothing written).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from tests.providers import ANTHROPIC_KEY, OPENAI_KEY, FakeProviders, anthropic, openai

from benchmarks.common import fresh_database
from jobpulse import Actor, JobManager, Settings
from jobpulse.batches.poller import BatchPoller
from jobpulse.batches.providers import ProviderClient

BATCHES = 1000
ANSWER_S = 0.05
CONCURRENCY = 8
ACTOR = Actor("org-bench", "batches")


def _script(fake: FakeProviders) -> list[tuple[str, str]]:
    """Half Anthropic, half OpenAI batches, all running."""
    batches = []
    for n in range(BATCHES):
        if n % 2:
            fake.script("anthropic", f"a{n}", anthropic(f"a{n}", "in_progress", processing=5))
            batches.append(("anthropic", f"a{n}"))
        else:
            fake.script("openai", f"o{n}", openai(f"o{n}", "in_progress", 5, 1, 0))
            batches.append(("openai", f"o{n}"))
    return batches


async def _raw(fake: FakeProviders, batches: list[tuple[str, str]]) -> float:
    """Seconds a bare aiohttp loop takes to GET every batch, CONCURRENCY at a time."""
    slots = asyncio.Semaphore(CONCURRENCY)
    headers = {
        "anthropic": {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
        "openai": {"Authorization": f"Bearer {OPENAI_KEY}"},
    }
    paths = {"anthropic": "/v1/messages/batches/", "openai": "/v1/batches/"}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(provider: str, batch_id: str) -> None:
            async with slots:
                url = fake.base_url + paths[provider] + batch_id
                async with session.get(url, headers=headers[provider]) as response:
                    await response.json()

        started = time.perf_counter()
        await asyncio.gather(*(get(*batch) for batch in batches))
        return time.perf_counter() - started


async def measure(kind: str) -> dict[str, float]:
    """Seconds for one polling round (ours), the raw loop, and the ideal."""
    fake = FakeProviders(delay_s=ANSWER_S)
    await fake.start()
    try:
        batches = _script(fake)
        raw = await _raw(fake, batches)
        async with fresh_database(kind) as url:
            settings = Settings(
                database_url=url,
                anthropic_base_url=fake.base_url,
                openai_base_url=fake.base_url,
                anthropic_api_key=ANTHROPIC_KEY,
                openai_api_key=OPENAI_KEY,
                batch_poll_concurrency=CONCURRENCY,
            )
            jobs = JobManager.from_settings(settings)
            client = ProviderClient(settings)
            try:
                for provider, batch_id in batches:
                    metadata = {"provider": provider, "batch_id": batch_id}
                    await jobs.create_job(ACTOR, job_type="llm_batch", metadata=metadata)
                poller = BatchPoller(jobs, settings, client)
                started = time.perf_counter()
                polled = await poller.run_once()
                ours = time.perf_counter() - started
                assert polled == BATCHES, polled
            finally:
                await client.close()
                await jobs.close()
    finally:
        await fake.stop()
    return {"ours": ours, "raw": raw, "ideal": BATCHES * ANSWER_S / CONCURRENCY}
