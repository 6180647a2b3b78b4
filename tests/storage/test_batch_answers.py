"""What the batch poller makes of providers' answers as they really come, on SQLite and
PostgreSQL against the fake providers: answers in pieces, huge Retry-After values, answers
of strange shapes, and batch ids that name no batch.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import update

from jobpulse import JobStatus
from jobpulse.storage.tables import batch_polls
from tests.providers import Answer, FakeProviders, anthropic, openai
from tests.sql import database_of
from tests.storage.test_batches import (  # noqa: F401 - fixtures
    ALICE,
    MakePolling,
    fake,
    make_polling,
)

#: A batch body of about 300 KB (a long list of errors is as long as that).
PADDING = {"errors": {"object": "list", "data": [{"message": "x" * 1000}] * 300}}


@pytest.mark.parametrize(
    "answer",
    [
        Answer(body=openai("batch_p", "in_progress", 2, 1, 0), pieces=2, pause_s=0.3),
        Answer(body=openai("batch_p", "in_progress", 2, 1, 0) | PADDING),
        Answer(body=openai("batch_p", "in_progress", 2, 1, 0) | PADDING, pieces=6, pause_s=0.1),
    ],
    ids=["two-writes", "300kB", "300kB-in-pieces"],
)
async def test_an_answer_is_read_whole_however_it_arrives(
    fake: FakeProviders,  # noqa: F811
    make_polling: MakePolling,  # noqa: F811
    answer: Answer,
) -> None:
    polling = await make_polling()
    fake.script("openai", "batch_p", answer)
    job = await polling.add("openai", "batch_p")
    await polling.poller.run_once()
    found = await polling.job(job)
    assert "last_poll_error" not in found.metadata
    assert found.status == JobStatus.RUNNING
    assert found.metadata["progress"] == {"done": 1, "total": 2}


async def test_an_answer_past_the_limit_is_a_recorded_error(
    fake: FakeProviders,  # noqa: F811
    make_polling: MakePolling,  # noqa: F811
) -> None:
    polling = await make_polling()
    huge = openai("batch_h", "in_progress", 2, 1, 0) | {"pad": "x" * (1024 * 1024)}
    fake.script("openai", "batch_h", Answer(body=huge, pieces=8, pause_s=0.05))
    job = await polling.add("openai", "batch_h")
    await polling.poller.run_once()
    found = await polling.job(job)
    assert found.status == JobStatus.PENDING
    assert found.metadata["last_poll_error"] == "openai answered more than 1 MiB for a batch"


async def test_a_huge_retry_after_pauses_a_provider_no_longer_than_the_bound(
    fake: FakeProviders,  # noqa: F811
    make_polling: MakePolling,  # noqa: F811
) -> None:
    polling = await make_polling(batch_poll_concurrency=1, batch_max_pause_s=1.5)
    failing = Answer(503, {"error": {"message": "overloaded"}}, {"Retry-After": "99999999999"})
    fake.script("anthropic", "msgbatch_a", failing, anthropic("msgbatch_a", processing=1))
    fake.script("anthropic", "msgbatch_b", anthropic("msgbatch_b", processing=1))
    first = await polling.add("anthropic", "msgbatch_a")
    other = await polling.add("anthropic", "msgbatch_b")

    async def both_running() -> bool:
        jobs = [await polling.job(job) for job in (first, other)]
        return all(job.status == JobStatus.RUNNING for job in jobs)

    began = time.monotonic()
    await polling.until(both_running, within_s=15)
    assert time.monotonic() - began < 10, "the pause was not cut to its bound"
    failed_at = fake.polls("anthropic", "msgbatch_a")[0].at
    later = [seen.at - failed_at for seen in fake.seen if seen.at > failed_at]
    assert min(later) >= 1.5, "the provider was asked again within its pause"
    assert "last_poll_error" not in (await polling.job(first)).metadata


def test_the_pause_bound_defaults_to_five_minutes() -> None:
    from jobpulse import Settings

    assert Settings().batch_max_pause_s == 300


ODD_ANSWERS: list[tuple[str, Any]] = [
    ("anthropic", {"processing_status": {"nested": True}, "request_counts": {}}),
    ("anthropic", {"processing_status": ["ended"], "request_counts": {}}),
    ("anthropic", {"processing_status": "ended", "request_counts": [1, 2]}),
    ("anthropic", {"processing_status": "ended", "request_counts": {"succeeded": -1}}),
    ("anthropic", {}),
    ("anthropic", [1, 2, 3]),
    ("anthropic", None),
    ("openai", {"status": {"nested": True}}),
    ("openai", {"status": 7, "request_counts": {"total": 1}}),
    ("openai", {"status": "completed", "request_counts": {"total": 1.5}}),
    ("openai", {"status": "completed", "request_counts": {"total": True}}),
    ("openai", "in_progress"),
]


async def test_answers_of_odd_shapes_are_recorded_as_poll_errors(
    fake: FakeProviders,  # noqa: F811
    make_polling: MakePolling,  # noqa: F811
) -> None:
    polling = await make_polling()
    jobs = []
    for n, (provider, body) in enumerate(ODD_ANSWERS):
        batch_id = f"{'msgbatch' if provider == 'anthropic' else 'batch'}_odd{n}"
        fake.script(provider, batch_id, Answer(body=body, pieces=2))  # a list as JSON too
        jobs.append((batch_id, await polling.add(provider, batch_id)))
    await polling.poller.run_once()
    for batch_id, job in jobs:
        found = await polling.job(job)
        error = found.metadata.get("last_poll_error")
        assert error is not None, f"{batch_id}: no last_poll_error"
        assert f"unexpected answer for batch {batch_id}" in error, error
        assert found.status == JobStatus.PENDING
        notes = [event.reason for event in await polling.jobs.list_events(ALICE, job.id)]
        assert f"batch poll failed: {error}" in notes
    nested = (await polling.job(jobs[0][1])).metadata["last_poll_error"]
    assert "processing_status is dict, not one of canceling, ended, in_progress" in nested


BAD_IDS = [".", "..", "a/b", "%2e%2e", "batch 1", "batch_1?x=1", "msgbatch_é", "x" * 129]


@pytest.mark.parametrize("batch_id", BAD_IDS)
async def test_an_id_that_is_no_batch_id_is_refused_at_creation(
    make_polling: MakePolling,  # noqa: F811
    batch_id: str,
) -> None:
    from jobpulse import ValidationError

    polling = await make_polling()
    with pytest.raises(ValidationError, match=r"metadata\.batch_id: the provider's batch id"):
        await polling.add("anthropic", batch_id)
    assert await polling.followed() == 0


async def test_an_id_followed_before_ids_were_checked_is_never_polled(
    fake: FakeProviders,  # noqa: F811
    make_polling: MakePolling,  # noqa: F811
) -> None:
    polling = await make_polling()
    fake.script("anthropic", "msgbatch_1", anthropic("msgbatch_1", processing=1))
    job = await polling.add("anthropic", "msgbatch_1", callback_url="http://127.0.0.1:9/done")
    await database_of(polling.jobs).write(
        lambda c: c.execute(update(batch_polls).values(batch_id=".."))
    )
    await polling.poller.run_once()
    assert fake.seen == [], "the operator's key went to GET /v1/messages/batches/"
    failed = await polling.job(job)
    assert failed.status == JobStatus.FAILED
    assert failed.stop_reason == "error"
    assert (
        failed.metadata["last_poll_error"]
        == "batch_id '..' is not a valid anthropic batch id: not polled"
    )
    assert await polling.callbacks(job) == ["job.failed"]
    assert await polling.followed() == 0
