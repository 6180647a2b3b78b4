"""Tokens, cost, time to first token and stop reasons of the LLM calls of a tracked run, read
from the official `openai` and `anthropic` clients: `jobpulse.llm.instrument(client)`.

Client-side: this package imports neither the server nor, until a client of theirs is
instrumented, the providers' SDKs.
"""

from __future__ import annotations

from jobpulse.llm.instrument import instrument, observe
from jobpulse.llm.scope import areporting_to, reporting_to
from jobpulse.llm.stops import ANTHROPIC, OPENAI, error_stop_reason, stop_reason_of

__all__ = [
    "ANTHROPIC",
    "OPENAI",
    "areporting_to",
    "error_stop_reason",
    "instrument",
    "observe",
    "reporting_to",
    "stop_reason_of",
]
