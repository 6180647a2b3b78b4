"""The exceptions jobpulse raises; the API turns each into one JSON error.

JobPulseError
├── NotFoundError            the job (or key) does not exist or is not visible to the caller
├── InvalidTransitionError   the state machine refuses the change (409)
│   └── JobCancelledError    ... because the job was cancelled: its worker should stop (409)
├── ValidationError          the input breaks a rule (422)
├── InvalidCursorError       a pagination cursor is unknown or not visible (400)
├── UnauthorizedError        no valid API key (401)
├── ForbiddenError           the key may not do this (403)
├── PayloadTooLargeError     the request body is too large (413)
├── RequestTimeoutError      the request body did not arrive in time (408)
├── HeadersTooLargeError     the request's headers are too large or too many (431)
├── TooManyConnectionsError  the client holds too many connections already (429)
├── TooManyRequestsError     too many long reads at once: retry after `retry_after_s` (429)
├── ReadTimeoutError         a read ran past its time and was stopped (503)
├── UnavailableError         the database cannot be reached (503)
├── AlreadyServedError       another `serve` holds the SQLite file (refused at start)
└── PriceFileError           JOBPULSE_PRICES cannot be used (refused at start)
"""

from __future__ import annotations

from typing import Any


class JobPulseError(Exception):
    """Something went wrong in jobpulse."""

    #: The machine-readable error code, stable on the wire.
    code = "error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)


class NotFoundError(JobPulseError):
    """The job does not exist."""

    code = "not_found"


class InvalidTransitionError(JobPulseError):
    """The job cannot move to the requested status."""

    code = "invalid_transition"

    def __init__(
        self,
        message: str | None = None,
        *,
        current_status: str,
        requested_status: str | None,
    ) -> None:
        super().__init__(message, current_status=current_status, requested_status=requested_status)
        self.current_status = current_status
        self.requested_status = requested_status


class JobCancelledError(InvalidTransitionError):
    """The job was cancelled: stop working on it."""

    code = "job_cancelled"


class ValidationError(JobPulseError):
    """The request is not valid."""

    code = "validation_error"


class InvalidCursorError(JobPulseError):
    """The pagination cursor is not a job visible to the caller."""

    code = "invalid_cursor"


class UnauthorizedError(JobPulseError):
    """A valid API key is required."""

    code = "unauthorized"


class ForbiddenError(JobPulseError):
    """This API key may not do that."""

    code = "forbidden"


class PayloadTooLargeError(JobPulseError):
    """The request body is too large."""

    code = "payload_too_large"


class RequestTimeoutError(JobPulseError):
    """The request body did not arrive in time."""

    code = "request_timeout"


class HeadersTooLargeError(JobPulseError):
    """The request's headers are too large."""

    code = "headers_too_large"


class TooManyConnectionsError(JobPulseError):
    """This client holds too many connections already."""

    code = "too_many_connections"


class TooManyRequestsError(JobPulseError):
    """Too many listings, counts or figures are being read at once: retry later."""

    code = "too_many_requests"

    def __init__(self, message: str | None = None, *, retry_after_s: int = 1, **details: Any):
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class ReadTimeoutError(JobPulseError):
    """The read took too long and was stopped: narrow the window or the filters."""

    code = "read_timeout"


class UnavailableError(JobPulseError):
    """The database is unavailable."""

    code = "unavailable"


class AlreadyServedError(JobPulseError):
    """Another process already serves this database."""

    code = "already_served"


class PriceFileError(JobPulseError):
    """The price file (JOBPULSE_PRICES) cannot be used."""

    code = "price_file"


def error_class(code: str) -> type[JobPulseError]:
    """The exception class for a wire error code (JobPulseError for an unknown one)."""
    kinds: dict[str, type[JobPulseError]] = {}
    pending: list[type[JobPulseError]] = [JobPulseError]
    while pending:
        kind = pending.pop()
        kinds.setdefault(kind.code, kind)
        pending.extend(kind.__subclasses__())
    return kinds.get(code, JobPulseError)
