"""Why an LLM call stopped, in jobpulse's words: each provider's finish reason mapped to a stop
reason, and an error a provider answered mapped to the stop reason of a run it ended.

The tables are the documentation (docs/llm.md prints them); `stop_reason_of` and
`error_stop_reason` only look them up.
"""

from __future__ import annotations

from jobpulse.domain import StopReason

#: OpenAI's `finish_reason` (chat completions).
OPENAI: dict[str, StopReason] = {
    "stop": StopReason.END_TURN,
    "length": StopReason.MAX_TOKENS_EXCEEDED,
    "tool_calls": StopReason.REQUIRES_APPROVAL,
    "function_call": StopReason.REQUIRES_APPROVAL,
    "content_filter": StopReason.INVALID_LLM_RESPONSE,
}

#: Anthropic's `stop_reason` (messages).
ANTHROPIC: dict[str, StopReason] = {
    "end_turn": StopReason.END_TURN,
    "stop_sequence": StopReason.END_TURN,
    "max_tokens": StopReason.MAX_TOKENS_EXCEEDED,
    "model_context_window_exceeded": StopReason.MAX_TOKENS_EXCEEDED,
    "tool_use": StopReason.REQUIRES_APPROVAL,
    "pause_turn": StopReason.MAX_STEPS,
    "refusal": StopReason.INVALID_LLM_RESPONSE,
}

#: By provider name, as usage records spell it.
FINISH_REASONS: dict[str, dict[str, StopReason]] = {"openai": OPENAI, "anthropic": ANTHROPIC}

#: Errors that say the account has no credit left: OpenAI's error `code`, Anthropic's `type`.
NO_CREDIT = frozenset({"insufficient_quota", "billing_error", "billing_hard_limit_reached"})


def stop_reason_of(provider: str, finish_reason: str | None) -> StopReason | None:
    """The stop reason of a call that ended with `finish_reason` (None: unknown or none)."""
    if finish_reason is None:
        return None
    return FINISH_REASONS.get(provider, {}).get(finish_reason)


def error_stop_reason(error_code: str | None) -> StopReason:
    """The stop reason of a run ended by a provider's error (its code or type, if any)."""
    if error_code in NO_CREDIT:
        return StopReason.INSUFFICIENT_CREDITS
    return StopReason.LLM_API_ERROR
