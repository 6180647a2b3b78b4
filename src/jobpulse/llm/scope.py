"""Reporting LLM calls to a job the code did not start with `track`: the job of a task that an
instrumented executor runs, say. `with jobpulse.llm.reporting_to(jp, job_id):` (or
`async with areporting_to(...)`) sends the usage and the first content token of the
instrumented calls made inside the block to that job; ending the job stays its owner's, who
may read how the calls stopped from the ledger (`ledger.final_change(error, change)`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from jobpulse.errors import JobCancelledError
from jobpulse.llm.ledger import CURRENT, AsyncLedger, ThreadLedger

logger = logging.getLogger("jobpulse.llm")


class Job:
    """A job known by its id alone."""

    def __init__(self, job_id: str) -> None:
        self.id: str | None = job_id
        #: Set when a report was answered that the job is cancelled.
        self.cancelled: JobCancelledError | None = None

    def learn(self, error: JobCancelledError) -> None:
        self.cancelled = error
        logger.info("job %s was cancelled", self.id)


@contextlib.contextmanager
def reporting_to(client: Any, job_id: str) -> Iterator[ThreadLedger]:
    """Report the instrumented LLM calls made inside the block to job `job_id`, through
    `client` (a `JobPulse`); the block's reports are settled (at most 5 s) when it ends.
    """
    ledger = ThreadLedger(Job(job_id), client)
    token = CURRENT.set(ledger)
    try:
        yield ledger
    finally:
        CURRENT.reset(token)
        ledger.settle()


@contextlib.asynccontextmanager
async def areporting_to(client: Any, job_id: str) -> AsyncIterator[AsyncLedger]:
    """`reporting_to` for async code, through an `AsyncJobPulse`."""
    ledger = AsyncLedger(Job(job_id), client)
    token = CURRENT.set(ledger)
    try:
        yield ledger
    finally:
        CURRENT.reset(token)
        await ledger.settle()
