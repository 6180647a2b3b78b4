"""The wire format of bulk actions: the list filters as a JSON body, and the result."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobpulse.domain import parse_status, parse_stop_reason
from jobpulse.listing import JobFilter
from jobpulse.public import StatusName, StopReasonName
from jobpulse.schemas import UtcDatetime

Text = Field(default=None, min_length=1, max_length=255)


class BulkFilter(BaseModel):
    """The list filters of GET /v1/jobs, as JSON: `status` one name or a list, and
    `metadata` an object of string values (`"metadata.<key>": value` is read as well).
    """

    model_config = ConfigDict(extra="forbid")

    status: list[StatusName] | StatusName | None = None
    job_type: str | None = Text
    background: bool | None = None
    source_id: str | None = Text
    stop_reason: StopReasonName | None = None
    created_after: UtcDatetime | None = None
    created_before: UtcDatetime | None = None
    active: bool | None = None
    stuck: bool | None = None
    user_id: str | None = Text
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _metadata_keys(cls, data: Any) -> Any:
        """Fold `metadata.<key>` entries (the query string's spelling) into `metadata`."""
        if not isinstance(data, dict):
            return data
        dotted = {k: v for k, v in data.items() if isinstance(k, str) and k.startswith("metadata.")}
        if not dotted:
            return data
        rest = {k: v for k, v in data.items() if k not in dotted}
        given = rest.get("metadata")
        folded = {k.removeprefix("metadata."): v for k, v in dotted.items()}
        return rest | {"metadata": {**(given if isinstance(given, dict) else {}), **folded}}

    def to_filter(self) -> JobFilter:
        """The JobFilter these filters ask for (ValidationError for a bad combination)."""
        statuses = [self.status] if isinstance(self.status, str) else self.status
        return JobFilter(
            statuses=None if not statuses else frozenset(map(parse_status, statuses)),
            job_type=self.job_type,
            background=self.background,
            source_id=self.source_id,
            stop_reason=None if self.stop_reason is None else parse_stop_reason(self.stop_reason),
            created_after=self.created_after,
            created_before=self.created_before,
            active=self.active,
            stuck=self.stuck,
            user_id=self.user_id,
            metadata=self.metadata,
        )


class BulkRequest(BaseModel):
    """The body of POST /v1/jobs/callbacks/retry: which jobs, and whether only to count."""

    model_config = ConfigDict(extra="forbid")

    filter: BulkFilter
    dry_run: bool = False


class BulkCancel(BulkRequest):
    """The body of POST /v1/jobs/cancel; `reason` goes into each cancelled job's history."""

    reason: str | None = Field(default=None, max_length=1000)
