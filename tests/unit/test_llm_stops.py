"""The finish reasons of both providers' SDKs, each mapped to a stop reason that implies the
status a user expects; provider errors to the stop reason of a run they end.
"""

from __future__ import annotations

import typing
from pathlib import Path

import anthropic.types
import pytest
from openai.types.chat import chat_completion, chat_completion_chunk

from jobpulse.domain import STOP_REASON_STATUS, JobStatus, StopReason
from jobpulse.llm import ANTHROPIC, OPENAI, error_stop_reason, stop_reason_of


def literals(annotation: object) -> set[str]:
    """The strings of a `Literal` (inside Optional), as an SDK declares its finish reasons."""
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    found: set[str] = set()
    for inner in typing.get_args(annotation):
        found |= literals(inner)
    return found


def test_every_finish_reason_the_openai_sdk_declares_is_mapped() -> None:
    streamed = literals(chat_completion_chunk.Choice.model_fields["finish_reason"].annotation)
    whole = literals(chat_completion.Choice.model_fields["finish_reason"].annotation)
    assert streamed  # read from the SDK, not empty
    assert streamed | whole <= set(OPENAI)


def test_every_stop_reason_the_anthropic_sdk_declares_is_mapped() -> None:
    declared = literals(anthropic.types.StopReason)
    assert "end_turn" in declared
    assert declared <= set(ANTHROPIC)


@pytest.mark.parametrize(
    ("provider", "finish", "stop_reason", "status"),
    [
        ("openai", "stop", StopReason.END_TURN, JobStatus.COMPLETED),
        ("openai", "length", StopReason.MAX_TOKENS_EXCEEDED, JobStatus.FAILED),
        ("openai", "tool_calls", StopReason.REQUIRES_APPROVAL, JobStatus.COMPLETED),
        ("openai", "function_call", StopReason.REQUIRES_APPROVAL, JobStatus.COMPLETED),
        ("openai", "content_filter", StopReason.INVALID_LLM_RESPONSE, JobStatus.FAILED),
        ("anthropic", "end_turn", StopReason.END_TURN, JobStatus.COMPLETED),
        ("anthropic", "stop_sequence", StopReason.END_TURN, JobStatus.COMPLETED),
        ("anthropic", "max_tokens", StopReason.MAX_TOKENS_EXCEEDED, JobStatus.FAILED),
        (
            "anthropic",
            "model_context_window_exceeded",
            StopReason.MAX_TOKENS_EXCEEDED,
            JobStatus.FAILED,
        ),
        ("anthropic", "tool_use", StopReason.REQUIRES_APPROVAL, JobStatus.COMPLETED),
        ("anthropic", "pause_turn", StopReason.MAX_STEPS, JobStatus.COMPLETED),
        ("anthropic", "refusal", StopReason.INVALID_LLM_RESPONSE, JobStatus.FAILED),
    ],
)
def test_a_finish_reason_maps_to_a_stop_reason_and_its_status(
    provider: str, finish: str, stop_reason: StopReason, status: JobStatus
) -> None:
    found = stop_reason_of(provider, finish)
    assert found is stop_reason
    assert STOP_REASON_STATUS[found] is status


@pytest.mark.parametrize(
    ("provider", "finish"), [("openai", None), ("openai", "new_reason"), ("mistral", "stop")]
)
def test_an_unknown_or_missing_finish_reason_maps_to_none(
    provider: str, finish: str | None
) -> None:
    assert stop_reason_of(provider, finish) is None


@pytest.mark.parametrize(
    ("code", "stop_reason"),
    [
        ("insufficient_quota", StopReason.INSUFFICIENT_CREDITS),
        ("billing_error", StopReason.INSUFFICIENT_CREDITS),
        ("rate_limit_exceeded", StopReason.LLM_API_ERROR),
        ("overloaded_error", StopReason.LLM_API_ERROR),
        (None, StopReason.LLM_API_ERROR),
    ],
)
def test_a_provider_error_maps_to_a_failing_stop_reason(
    code: str | None, stop_reason: StopReason
) -> None:
    assert error_stop_reason(code) is stop_reason
    assert STOP_REASON_STATUS[stop_reason] is JobStatus.FAILED


DOCS = Path(__file__).resolve().parents[2] / "docs" / "llm.md"


@pytest.mark.parametrize(("provider", "table"), [("OpenAI", OPENAI), ("Anthropic", ANTHROPIC)])
def test_the_documented_table_is_the_one_applied(
    provider: str, table: dict[str, StopReason]
) -> None:
    page = DOCS.read_text()
    rows = page.split(f"| {provider} ")[1].split("\n\n")[0].splitlines()[2:]
    documented = {}
    for row in rows:
        finish, stop_reason, status = (
            cell.strip().strip("`") for cell in row.strip("|").split("|")
        )
        documented[finish] = (stop_reason, status)
    shown = {finish: (stop.value, STOP_REASON_STATUS[stop].value) for finish, stop in table.items()}
    assert documented == shown
