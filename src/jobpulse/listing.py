"""What a listing asks for: the filters of a job listing or count, and a keyset page."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from jobpulse.domain import ACTIVE, Job, JobStatus, StopReason, to_utc
from jobpulse.errors import ValidationError

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 1000
#: The metadata keys a listing can filter on.
METADATA_KEY = re.compile(r"[\w.:-]{1,128}")


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The filters of a job listing or count; None means no filter."""

    statuses: frozenset[JobStatus] | None = None
    job_type: str | None = None
    background: bool | None = None
    source_id: str | None = None
    stop_reason: StopReason | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    active: bool | None = None
    stuck: bool | None = None
    user_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: One job only (its live stream).
    job_id: str | None = None
    #: Jobs with an LLM call of this model (its id, as recorded: jobpulse.usage).
    model: str | None = None

    def __post_init__(self) -> None:
        for name in ("created_after", "created_before"):
            if (moment := getattr(self, name)) is not None:
                object.__setattr__(self, name, to_utc(name, moment))
        if (
            self.created_after is not None
            and self.created_before is not None
            and self.created_after > self.created_before
        ):
            raise ValidationError("created_after is later than created_before")
        for key in self.metadata:
            if not METADATA_KEY.fullmatch(key):
                raise ValidationError(
                    f"metadata filter key {key!r} must be 1-128 letters, digits, _ . - or :"
                )

    def matches(self, job: Job) -> bool:
        """Whether `job` is one this filter selects (what the listing's SQL selects)."""
        if self.statuses is not None and job.status not in self.statuses:
            return False
        if self.job_id is not None and job.id != self.job_id:
            return False
        for name in ("job_type", "background", "stop_reason", "user_id"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(job, name) != wanted:
                return False
        source = job.metadata.get("source_id")
        if self.source_id is not None and (source is None or str(source) != self.source_id):
            return False
        if self.created_after is not None and not job.created_at > self.created_after:
            return False
        if self.created_before is not None and not job.created_at < self.created_before:
            return False
        if self.active is not None and (job.status in ACTIVE) != self.active:
            return False
        if self.stuck is not None and (job.stuck_since is not None) != self.stuck:
            return False
        return all(job.metadata.get(key) == value for key, value in self.metadata.items())


@dataclass(frozen=True, slots=True)
class Page:
    """A keyset page: `before`/`after` are job ids, the page is the one next to them."""

    limit: int = PAGE_LIMIT_DEFAULT
    ascending: bool = False
    before: str | None = None
    after: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not 1 <= self.limit <= PAGE_LIMIT_MAX:
            raise ValidationError(f"limit must be between 1 and {PAGE_LIMIT_MAX}, got {self.limit}")

    @property
    def reads_backwards(self) -> bool:
        """Whether the rows next to the cursor are the newest ones before it.

        Reading ascending from `after`, or with no cursor at all in ascending order, walks
        forward; everything else walks back from `before` (or from the newest job).
        """
        if self.ascending:
            return self.after is None and self.before is not None
        return not (self.after is not None and self.before is None)
