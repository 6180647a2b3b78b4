"""What every tracked run shares: the client it reports to, the final change of a run, and
how a run learns that its job was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from typing import Any, ParamSpec, Protocol, TypeVar

import httpx

from jobpulse.errors import JobCancelledError, JobPulseError
from jobpulse.llm.ledger import CURRENT
from jobpulse.public import JobPublic

logger = logging.getLogger("jobpulse.tracking")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
A = TypeVar("A")
#: What a failed report may raise; it is logged, never raised into the tracked code.
REPORT_ERRORS = (JobPulseError, httpx.HTTPError)
#: Raised into tracked code whose job was cancelled (the SDK's name for JobCancelledError).
JobCancelled = JobCancelledError


class Reporter(Protocol):
    """What a tracker needs of a client (JobPulse is one)."""

    def create_job(self, **fields: Any) -> JobPublic: ...

    def update_job(self, job_id: str, **fields: Any) -> JobPublic: ...

    def heartbeat(self, job_id: str, progress: dict[str, Any] | None = None) -> JobPublic: ...

    def first_token(self, job_id: str) -> JobPublic: ...

    def record_usage(self, job_id: str, **fields: Any) -> Any: ...


class AsyncReporter(Protocol):
    """What an async tracker needs of a client (AsyncJobPulse is one)."""

    async def create_job(self, **fields: Any) -> JobPublic: ...

    async def update_job(self, job_id: str, **fields: Any) -> JobPublic: ...

    async def heartbeat(self, job_id: str, progress: dict[str, Any] | None = None) -> JobPublic: ...

    async def first_token(self, job_id: str) -> JobPublic: ...

    async def wait_cancelled(self, job_id: str) -> bool: ...

    async def record_usage(self, job_id: str, **fields: Any) -> Any: ...


def outcome(error: BaseException | None) -> dict[str, Any]:
    """The final change for a run that ended with `error` (None when it succeeded)."""
    if error is None:
        return {"status": "completed"}
    if isinstance(error, KeyboardInterrupt | asyncio.CancelledError | GeneratorExit):
        return {"status": "cancelled", "stop_reason": "cancelled"}
    message = str(error)[:2000]
    return {
        "stop_reason": "error",
        "metadata": {"error_type": type(error).__qualname__, "error_message": message},
    }


def job_fields(options: dict[str, Any]) -> dict[str, Any]:
    wanted = ("job_type", "metadata", "callback_url", "background", "timeout_s")
    fields = {name: options[name] for name in wanted if name in options}
    if "heartbeat_s" in options and "heartbeat_timeout_s" not in options:
        fields["heartbeat_timeout_s"] = round(options["heartbeat_s"] * 3, 3)
    return fields | {"status": "running"}


def forget(current: contextvars.Token[Any] | None) -> None:
    """Leave the run's context (a generator's run may end in another context: then it stays)."""
    if current is not None:
        with contextlib.suppress(ValueError):
            CURRENT.reset(current)


def untracked(exc: Exception) -> None:
    logger.warning("could not create the job of a run, which goes on untracked: %s", exc)


class Cancellable:
    """A run's job and whether it has heard the job was cancelled."""

    def __init__(self, job: JobPublic | None) -> None:
        #: The job as last reported (None: it could not be created; the run is untracked).
        self.job = job
        self._cancelled: JobCancelledError | None = None

    @property
    def id(self) -> str | None:
        """The job id (None for an untracked run)."""
        return None if self.job is None else self.job.id

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled (as far as the run has heard)."""
        return self._cancelled is not None

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled."""
        if self._cancelled is not None:
            raise self._cancelled

    def learn(self, error: JobCancelledError) -> None:
        """Note that the job was cancelled (a heartbeat's answer said so)."""
        self._cancelled = error

    def _failed(self, exc: Exception) -> None:
        logger.warning("a report on %s failed: %s", self.id, exc)
