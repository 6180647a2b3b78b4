"""The wire format of LLM usage: a call's record as sent and as shown (the totals a job
shows are `jobpulse.public.UsagePublic`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobpulse.usage.rules import TOKEN_KINDS

#: A token count: a JSON integer, 0 or more (not a string, a fraction or a boolean).
Tokens = Annotated[int | None, Field(default=None, ge=0, le=10**12, strict=True)]
Nanoseconds = Annotated[int | None, Field(default=None, ge=0, le=2**63 - 1, strict=True)]


class UsageCreate(BaseModel):
    """The body of POST /v1/jobs/{id}/usage: one LLM call."""

    model_config = ConfigDict(extra="forbid")

    call_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the call's id (the provider's response id): a repeat records nothing",
    )
    provider: str = Field(min_length=1, max_length=64, examples=["anthropic", "openai"])
    model: str = Field(min_length=1, max_length=128, examples=["claude-sonnet-4-5"])
    input_tokens: Tokens = Field(
        default=None, description="billed at the input price: not cache reads or writes"
    )
    output_tokens: Tokens
    cache_read_tokens: Tokens
    cache_write_tokens: Tokens
    cost_usd: float | None = Field(
        default=None, ge=0, le=1_000_000, allow_inf_nan=False, description="else priced"
    )
    ttft_ns: Nanoseconds
    duration_ns: Nanoseconds

    @model_validator(mode="after")
    def _has_tokens(self) -> Self:
        if all(getattr(self, kind) is None for kind in TOKEN_KINDS):
            raise ValueError(f"give at least one token count ({', '.join(TOKEN_KINDS)})")
        return self


class CallPublic(BaseModel):
    """One recorded LLM call of a job."""

    id: str
    job_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None = Field(description="fixed when recorded; None when unknown")
    cost_source: Literal["caller", "prices"] | None = Field(
        description="the caller's cost, or the price table's when recorded"
    )
    ttft_ns: int | None
    duration_ns: int | None
    recorded_at: datetime
    late: bool = Field(description="recorded after the job had ended")


class UsageSumsPublic(BaseModel):
    """LLM calls added up."""

    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float = Field(description="the sum of the calls' known costs")
    unpriced_calls: int = Field(description="calls whose cost is unknown (not in cost_usd)")


class UsagePointPublic(UsageSumsPublic):
    """One bucket of the series: the calls recorded in it."""

    start: datetime


class QuantilesPublic(BaseModel):
    """A distribution in seconds (interpolated within buckets, as /v1/stats' others)."""

    count: int
    p50: float | None
    p90: float | None
    p99: float | None


class ModelFiguresPublic(UsageSumsPublic):
    """One model's calls: sums, TTFT and duration quantiles, output tokens per second."""

    ttft: QuantilesPublic
    duration: QuantilesPublic
    output_tokens_per_s: float | None = Field(
        description="output tokens of the calls with a duration, per second of those calls"
    )


class UsageStatsPublic(UsageSumsPublic):
    """/v1/stats' `usage`: the LLM calls recorded in the window (a `model` filter keeps
    that model's calls), in all, per bucket, by `<provider>/<model>` and by job type.
    """

    series: list[UsagePointPublic]
    by_model: dict[str, ModelFiguresPublic]
    by_job_type: dict[str, UsageSumsPublic]
