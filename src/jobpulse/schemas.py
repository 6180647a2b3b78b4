"""The wire format of the HTTP API (pydantic); what the SDK reads too is in `jobpulse.public`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from jobpulse.domain import HEARTBEAT_TIMEOUT_MAX_S, TIMEOUT_MAX_S
from jobpulse.public import InitialStatus, StatusName, StopReasonName
from jobpulse.usage.schemas import UsageStatsPublic

Nanoseconds = Field(default=None, ge=0, le=2**63 - 1)


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from None


#: The start of an ISO 8601 date-time: a date, `T` (or a space), hours and minutes.
_ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_8601(value: object) -> object:
    """Only an ISO 8601 string (pydantic would also take a number, or a string of one, as
    seconds since 1970: `?until=0.5` is a typo, not a moment of January 1970).
    """
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_8601.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


#: A timezone-aware ISO 8601 moment, converted to UTC (a 422 for one that UTC cannot hold,
#: and for anything but an ISO 8601 string).
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_in_utc)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreate(_Strict):
    """The body of POST /v1/jobs."""

    job_type: str = Field(default="job", min_length=1, max_length=128)
    status: InitialStatus = "created"
    metadata: dict[str, Any] = Field(default_factory=dict)
    callback_url: str | None = Field(default=None, max_length=2048)
    background: bool = False
    timeout_s: float | None = Field(default=None, gt=0, le=TIMEOUT_MAX_S)
    deadline_at: UtcDatetime | None = None
    heartbeat_timeout_s: float | None = Field(default=None, gt=0, le=HEARTBEAT_TIMEOUT_MAX_S)
    #: Seconds this job may stay unchanged in any active status before it is flagged stuck
    #: (instead of JOBPULSE_STALE_CREATED_S / _PENDING_S / _RUNNING_S).
    stale_after_s: float | None = Field(default=None, gt=0, le=TIMEOUT_MAX_S)


class JobUpdate(_Strict):
    """The body of PATCH /v1/jobs/{id}; absent fields stay as they are."""

    status: StatusName | None = None
    stop_reason: StopReasonName | None = None
    metadata: dict[str, Any] | None = None
    ttft_ns: int | None = Nanoseconds
    total_duration_ns: int | None = Nanoseconds
    callback_url: str | None = Field(default=None, max_length=2048)
    reason: str | None = Field(default=None, max_length=1000)


class Heartbeat(_Strict):
    """The body of POST /v1/jobs/{id}/heartbeat (optional)."""

    progress: dict[str, Any] | None = None


class CancelRequest(_Strict):
    """The body of POST /v1/jobs/{id}/cancel (optional)."""

    reason: str | None = Field(default=None, max_length=1000)


class AttemptPublic(BaseModel):
    """One delivery attempt of a webhook."""

    id: int
    webhook_id: str
    event_type: str
    attempt: int
    attempted_at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: float
    state: Literal["delivered", "retrying", "failed", "exhausted"]
    next_attempt_at: datetime | None = None


class RetryPublic(BaseModel):
    """POST /v1/jobs/{id}/callbacks/retry."""

    webhook_id: str
    status: Literal["queued"] = "queued"


class StepCreate(_Strict):
    """The body of POST /v1/jobs/{id}/steps."""

    step_id: str | None = Field(default=None, min_length=1, max_length=128)
    status: Literal["success", "failed", "cancelled"]
    metadata: dict[str, Any] = Field(default_factory=dict)


class StepPublic(BaseModel):
    """A recorded step."""

    step_id: str
    job_id: str
    status: Literal["success", "failed", "cancelled"]
    metadata: dict[str, Any]
    created_at: datetime


class ErrorDetail(BaseModel):
    """The `error` object of every error response."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: {"error": {"code": ..., "message": ...}}."""

    error: ErrorDetail


class Health(BaseModel):
    """GET /healthz and /readyz."""

    status: str
    detail: str | None = None
    #: /healthz: the event loop, ok | lagging | stalled, and its last measured lag.
    event_loop: Literal["ok", "lagging", "stalled"] | None = None
    event_loop_lag_s: float | None = None


class HistogramPublic(BaseModel):
    """A distribution in seconds: its count, quantiles (interpolated within buckets, like
    Prometheus' histogram_quantile) and cumulative buckets.
    """

    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    buckets: list[dict[str, float]] = Field(
        description='cumulative: [{"le": seconds, "count": observations at or under it}]'
    )


class PointPublic(BaseModel):
    """One bucket of the series: jobs created, and jobs that completed or failed, in it."""

    start: datetime
    created: int
    completed: int
    failed: int


class WebhookHealth(BaseModel):
    """The webhooks of the window's jobs."""

    pending: int = Field(description="waiting to be delivered now")
    delivered: int = Field(description="delivered within the window")
    exhausted: int = Field(description="made within the window and out of attempts")


class StatsPublic(BaseModel):
    """GET /v1/stats: the jobs created in the window, under the list filters."""

    since: datetime
    until: datetime
    bucket: Literal["hour", "day"]
    total: int
    by_status: dict[StatusName, int]
    completion_rate: float | None = Field(description="completed / ended (None if none ended)")
    failure_rate: float | None = Field(description="failed / ended (None if none ended)")
    ttft: HistogramPublic
    duration: HistogramPublic
    stop_reasons: dict[str, int]
    series: list[PointPublic]
    stuck: int = Field(description="active jobs flagged stuck now (any creation time)")
    webhooks: WebhookHealth
    usage: UsageStatsPublic | None = Field(
        default=None, description="the LLM calls recorded in the window (see docs/usage.md)"
    )
