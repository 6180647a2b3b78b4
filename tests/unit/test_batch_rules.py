"""The pure rules of LLM batch jobs: naming a batch, reading providers' answers, tallying."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobpulse.batches.answers import Tally, UnexpectedAnswerError, read_anthropic, read_openai
from jobpulse.batches.rules import ERRORS_KEPT, batch_ref, lapsed
from jobpulse.domain import JobStatus
from jobpulse.errors import ValidationError
from tests.providers import anthropic, openai


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"provider": "gemini", "batch_id": "b"},
        {"provider": "openai"},
        {"provider": "openai", "batch_id": ""},
        {"provider": "openai", "batch_id": 12},
        {"provider": "anthropic", "batch_id": "x" * 256},
    ],
)
def test_a_batch_job_must_name_its_batch(metadata: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=r"metadata\.(provider|batch_id)"):
        batch_ref(metadata)


@pytest.mark.parametrize(
    "body",
    [
        {"processing_status": "paused", "request_counts": {}},
        {"processing_status": "ended"},
        {"processing_status": "ended", "request_counts": {"succeeded": -1}},
        {"processing_status": "ended", "request_counts": {"succeeded": "3"}},
        {"processing_status": "ended", "request_counts": {"succeeded": True}},
    ],
)
def test_an_anthropic_answer_that_is_not_a_batch_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(UnexpectedAnswerError):
        read_anthropic(body)


def test_openai_failed_batch_reason_carries_its_first_error() -> None:
    body = openai("b", "failed") | {"errors": {"data": [{"message": "bad jsonl at line 3"}]}}
    snapshot = read_openai(body)
    assert snapshot.outcome == JobStatus.FAILED
    assert snapshot.reason == "openai batch failed: 0 completed, 0 failed (bad jsonl at line 3)"


def test_an_anthropic_batch_ended_without_requests_completes() -> None:
    snapshot = read_anthropic(anthropic("b", "ended"))
    assert snapshot.outcome == JobStatus.COMPLETED
    assert (snapshot.done, snapshot.total) == (0, 0)


def test_the_tally_counts_everything_and_keeps_few_errors() -> None:
    tally = Tally()
    error = {"type": "error", "error": {"message": "overloaded " * 100}}
    for n in range(20):
        tally.add_anthropic({"custom_id": f"c{n}", "result": {"type": "errored", "error": error}})
    tally.add_anthropic({"custom_id": "x"})
    tally.add_anthropic([1, 2])
    tally.add_openai("text")
    tally.add_openai({"custom_id": "o", "response": {"status_code": 200}, "error": None})
    tally.add_openai({"custom_id": "p", "response": None, "error": {"message": "expired"}})
    summary = tally.summary()
    assert summary["counts"] == {"errored": 21, "unreadable": 3, "succeeded": 1}
    assert len(summary["errors"]) == ERRORS_KEPT
    assert all(len(e["message"]) <= 300 for e in summary["errors"])
    assert summary["errors"][0]["custom_id"] == "c0"


AFTER = datetime(2026, 11, 30, 10, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expires_at", "before", "expected"),
    [
        ("2026-11-30T10:00:00Z", AFTER, True),
        ("2026-11-30T10:00:00.123456+00:00", AFTER, True),
        ("2026-11-30T10:00:00", AFTER, True),  # no zone: UTC
        ("2026-11-30T11:00:00+02:00", AFTER, True),
        ("2026-11-30T10:00:02Z", AFTER, False),
        ("2026-11-30T10:00:00Z", None, False),
        ("tomorrow", AFTER, False),
        (1795086400, AFTER, False),
        (None, AFTER, False),
    ],
)
def test_a_batch_lapses_only_past_an_expiry_that_reads_as_a_time(
    expires_at: object, before: datetime | None, expected: bool
) -> None:
    assert lapsed(expires_at, before) is expected
