"""What a scoped token may read (its `Scope`), how long it lives, and how it is told from an
API key: pure rules, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from jobpulse.documents import text_problem
from jobpulse.domain import Job
from jobpulse.errors import ValidationError
from jobpulse.listing import METADATA_KEY, JobFilter

#: How a token's secret begins (an API key's begins `jp_`).
TOKEN_PREFIX = "jpt_"
#: A token's lifetime when none is asked for, and the longest one may ask for (seconds).
TTL_DEFAULT_S = 900
TTL_MAX_S = 86_400
#: Metadata pairs a scope may name, and the longest value.
METADATA_MAX = 16
VALUE_MAX = 255
#: A filter no job matches (job ids are `job-<uuid>`).
NOTHING = JobFilter(job_id="")


def is_token(secret: str) -> bool:
    """Whether a bearer secret is a scoped token rather than an API key."""
    return secret.startswith(TOKEN_PREFIX)


def expiry(now: datetime, ttl_s: int) -> datetime:
    """When a token minted at `now` for `ttl_s` seconds expires; ValidationError out of range."""
    if isinstance(ttl_s, bool) or not 1 <= ttl_s <= TTL_MAX_S:
        raise ValidationError(f"ttl_s must be between 1 and {TTL_MAX_S} seconds, got {ttl_s}")
    return now + timedelta(seconds=ttl_s)


@dataclass(frozen=True, slots=True)
class Scope:
    """The jobs a token reads: one job, or those of a type and/or with these metadata values
    (within what its issuing key sees).
    """

    job_id: str | None = None
    job_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.job_id is not None and (self.job_type is not None or self.metadata):
            raise ValidationError("a scope is a job_id, or a job_type and/or metadata: not both")
        if self.job_id is None and self.job_type is None and not self.metadata:
            raise ValidationError("a scope needs a job_id, a job_type or metadata")
        for name in ("job_id", "job_type"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value, min_length=1)
        if len(self.metadata) > METADATA_MAX:
            raise ValidationError(f"a scope names at most {METADATA_MAX} metadata keys")
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not METADATA_KEY.fullmatch(key):
                raise ValidationError(
                    f"metadata key {key!r} must be 1-128 letters, digits, _ . - or :"
                )
            _check_text(f"metadata.{key}", value, min_length=0)
        object.__setattr__(self, "metadata", dict(self.metadata))

    def matches(self, job: Job) -> bool:
        """Whether `job` is in the scope."""
        return self.as_filter().matches(job)

    def as_filter(self) -> JobFilter:
        """The scope as list filters."""
        return JobFilter(job_id=self.job_id, job_type=self.job_type, metadata=dict(self.metadata))

    def narrow(self, query: JobFilter) -> JobFilter:
        """`query` within the scope: the jobs both select (NOTHING if they cannot agree)."""
        for name in ("job_id", "job_type"):
            mine, theirs = getattr(self, name), getattr(query, name)
            if mine is not None and theirs is not None and mine != theirs:
                return NOTHING
        for key, value in self.metadata.items():
            if query.metadata.get(key, value) != value:
                return NOTHING
        return replace(
            query,
            job_id=self.job_id or query.job_id,
            job_type=self.job_type or query.job_type,
            metadata={**query.metadata, **self.metadata},
        )

    def to_document(self) -> dict[str, Any]:
        """The scope as JSON (what the API answers and the database keeps)."""
        if self.job_id is not None:
            return {"job_id": self.job_id}
        document: dict[str, Any] = {"metadata": dict(self.metadata)}
        if self.job_type is not None:
            document["job_type"] = self.job_type
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Scope:
        """The scope `to_document` wrote."""
        return cls(
            job_id=document.get("job_id"),
            job_type=document.get("job_type"),
            metadata=document.get("metadata") or {},
        )


def _check_text(name: str, value: object, min_length: int) -> None:
    """ValidationError unless `value` is a string of fitting length that both databases
    store alike.
    """
    if not isinstance(value, str) or not min_length <= len(value) <= VALUE_MAX:
        raise ValidationError(f"{name} must be a string of {min_length} to {VALUE_MAX} characters")
    if (problem := text_problem(value)) is not None:
        raise ValidationError(f"{name} {problem}")
