"""The jobs page's filters: as the page's query string asks them, checked, and as the
listing's JobFilter (every filter of the API's listing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query

from jobpulse.documents import text_problem
from jobpulse.domain import parse_status, parse_stop_reason
from jobpulse.errors import ValidationError
from jobpulse.listing import JobFilter


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of the jobs page (and of its live stream), as asked and as a JobFilter:
    every filter of the API's listing.
    """

    status: str = ""
    job_type: str = ""
    stop_reason: str = ""
    stuck: bool = False
    active: str = ""
    background: str = ""
    source_id: str = ""
    user_id: str = ""
    created_after: str = ""
    created_before: str = ""
    #: One `key=value` of metadata.
    metadata: str = ""
    #: Jobs with an LLM call of this model (its id, as recorded).
    model: str = ""

    @property
    def query(self) -> JobFilter:
        key, _, value = self.metadata.partition("=")
        return JobFilter(
            statuses=frozenset({parse_status(self.status)}) if self.status else None,
            job_type=self.job_type or None,
            stop_reason=parse_stop_reason(self.stop_reason) if self.stop_reason else None,
            stuck=True if self.stuck else None,
            active=_choice(self.active, "active", "ended"),
            background=_choice(self.background, "yes", "no"),
            source_id=self.source_id or None,
            user_id=self.user_id or None,
            created_after=_moment("created_after", self.created_after),
            created_before=_moment("created_before", self.created_before),
            metadata={key.strip(): value.strip()} if key.strip() else {},
            model=self.model or None,
        )

    def params(self) -> dict[str, str]:
        """The filters that are set, as query parameters."""
        given = {name: getattr(self, name) for name in self.__slots__}
        given["stuck"] = "true" if self.stuck else ""
        return {name: value for name, value in given.items() if value}


def _choice(value: str, yes: str, no: str) -> bool | None:
    return {yes: True, no: False}.get(value)


def _moment(name: str, value: str) -> datetime | None:
    """An ISO 8601 date field's value (the page's script adds the browser's offset; without
    one it is read as UTC).
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(
            f"{name} must be a date, or a date and time, like 2026-01-31 or 2026-01-31 12:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


Text = Annotated[str, Query(max_length=255)]


async def _filters(
    status: Annotated[str, Query(max_length=32)] = "",
    job_type: Text = "",
    stop_reason: Annotated[str, Query(max_length=64)] = "",
    stuck: bool = False,
    active: Annotated[str, Query(max_length=8)] = "",
    background: Annotated[str, Query(max_length=8)] = "",
    source_id: Text = "",
    user_id: Text = "",
    created_after: Annotated[str, Query(max_length=40)] = "",
    created_before: Annotated[str, Query(max_length=40)] = "",
    metadata: Text = "",
    model: Annotated[str, Query(max_length=128)] = "",
) -> Filters:
    check_text(
        job_type=job_type, source_id=source_id, user_id=user_id, metadata=metadata, model=model
    )
    return Filters(
        status,
        job_type,
        stop_reason,
        stuck,
        active,
        background,
        source_id,
        user_id,
        created_after,
        created_before,
        metadata,
        model,
    )


def check_text(**texts: str) -> None:
    """ValidationError naming the first of `texts` that no database could store alike."""
    for name, value in texts.items():
        if (problem := text_problem(value)) is not None:
            raise ValidationError(f"{name} {problem}")


PageFilters = Annotated[Filters, Depends(_filters)]
