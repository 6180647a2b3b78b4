"""Checks of what callers give the manager that the domain's rules do not cover: durations in
seconds, text the databases can store, callback URLs.
"""

from __future__ import annotations

from jobpulse.documents import text_problem
from jobpulse.domain import check_duration
from jobpulse.errors import ValidationError
from jobpulse.webhooks import guard


def seconds(name: str, value: float | None, most: float) -> float | None:
    """`value` as a number of seconds above 0 and at most `most` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise ValidationError(f"{name} must be a number of seconds above 0 and at most {most:g}")
    return float(value)


def printable(name: str, value: str | None) -> None:
    """Refuse text that one of the databases could not store (see `text_problem`)."""
    if value is not None and (problem := text_problem(value)) is not None:
        raise ValidationError(f"{name} {problem}")


def callback_url(value: str | None) -> str | None:
    """A callback URL that is storable and names an http(s) origin (see `guard.split`)."""
    if value is None:
        return None
    printable("callback_url", value)
    guard.split(value)
    return value


def required(name: str, value: int | None) -> int:
    """A duration in nanoseconds that must be given."""
    checked = check_duration(name, value)
    if checked is None:
        raise ValidationError(f"{name} is required")
    return checked
