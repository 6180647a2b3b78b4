"""jobpulse: track, guard and watch background jobs and LLM agent runs."""

from __future__ import annotations

from jobpulse.config import Settings
from jobpulse.domain import Actor, Job, JobChange, JobEvent, JobStatus, StopReason
from jobpulse.errors import (
    ForbiddenError,
    InvalidCursorError,
    InvalidTransitionError,
    JobPulseError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)
from jobpulse.listing import JobFilter, Page
from jobpulse.service import JobManager

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ForbiddenError",
    "InvalidCursorError",
    "InvalidTransitionError",
    "Job",
    "JobChange",
    "JobEvent",
    "JobFilter",
    "JobManager",
    "JobPulseError",
    "JobStatus",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "Settings",
    "StopReason",
    "UnauthorizedError",
    "UnavailableError",
    "ValidationError",
    "__version__",
]
