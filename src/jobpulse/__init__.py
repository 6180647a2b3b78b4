"""jobpulse: track, guard and watch background jobs and LLM agent runs.

The server's classes (`JobManager`, `Settings`) are imported on first use, so that a worker
importing only the SDK (`jobpulse.client`) never loads the server's dependencies.

Every module depends inward, on its own layer or those below (tests/unit/test_layers.py
holds the list and enforces it): pure rules (domain, errors, clock, each feature's rules) →
shared plumbing (config, metrics, telemetry) → storage/ (the JobStore; the only code that
imports SQLAlchemy or a driver) → jobs/, keys, the feed, webhook delivery → the features
(batches/, sweeper/, stats/, retention/, each with its loop) → api/, dashboard/, cli, the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jobpulse.domain import Actor, Job, JobChange, JobEvent, JobStatus, StopReason
from jobpulse.errors import (
    ForbiddenError,
    InvalidCursorError,
    InvalidTransitionError,
    JobCancelledError,
    JobPulseError,
    NotFoundError,
    PayloadTooLargeError,
    ReadTimeoutError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)
from jobpulse.listing import JobFilter, Page

if TYPE_CHECKING:
    from jobpulse.config import Settings
    from jobpulse.jobs.manager import JobManager

__version__ = "0.1.0"

#: Where each name imported on first use lives.
_LAZY = {"JobManager": "jobpulse.jobs.manager", "Settings": "jobpulse.config"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jobpulse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Actor",
    "ForbiddenError",
    "InvalidCursorError",
    "InvalidTransitionError",
    "Job",
    "JobCancelledError",
    "JobChange",
    "JobEvent",
    "JobFilter",
    "JobManager",
    "JobPulseError",
    "JobStatus",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "ReadTimeoutError",
    "Settings",
    "StopReason",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnavailableError",
    "ValidationError",
    "__version__",
]
