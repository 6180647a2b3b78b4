"""What the API answers about jobs, their history and their counts: the models the Python SDK
reads, apart from the server's other schemas so that a worker importing the SDK builds only
these (see tests/unit/test_sdk_import.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

StatusName = Literal["created", "pending", "running", "completed", "failed", "cancelled", "expired"]
InitialStatus = Literal["created", "pending", "running"]
StopReasonName = Literal[
    "end_turn",
    "max_steps",
    "tool_rule",
    "requires_approval",
    "error",
    "invalid_tool_call",
    "no_tool_call",
    "invalid_llm_response",
    "llm_api_error",
    "max_tokens_exceeded",
    "context_window_overflow_in_system_prompt",
    "insufficient_credits",
    "cancelled",
    "timeout",
    "heartbeat_lost",
]


class ModelUsagePublic(BaseModel):
    """LLM calls' totals: how many, their tokens, their cost (None while any is unknown)."""

    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None


class UsagePublic(ModelUsagePublic):
    """A job's LLM usage: its calls' totals, and the same by `<provider>/<model>`."""

    by_model: dict[str, ModelUsagePublic]


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: str
    organization_id: str
    user_id: str
    job_type: str
    status: StatusName
    stop_reason: StopReasonName | None = None
    background: bool
    metadata: dict[str, Any]
    callback_url: str | None = None
    callback_sent_at: datetime | None = None
    callback_status_code: int | None = None
    callback_error: str | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    deadline_at: datetime | None = None
    heartbeat_timeout_s: float | None = None
    stale_after_s: float | None = None
    stuck_since: datetime | None = None
    usage: UsagePublic | None = None


class EventPublic(BaseModel):
    """One entry of a job's history."""

    id: int
    job_id: str
    from_status: StatusName | None
    to_status: StatusName
    stop_reason: StopReasonName | None = None
    applied: bool
    reason: str | None = None
    actor: str | None = None
    at: datetime


class JobCountPublic(BaseModel):
    """GET /v1/jobs/count."""

    total: int
    by_status: dict[StatusName, int]
