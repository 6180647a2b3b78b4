"""Report a run of your own code as a job: `with client.track(...) as run:` or as a decorator.

The job is created running; `run.first_token()` (or the first item of `run.stream(...)`)
records the time to first token; optional heartbeats keep it visibly alive; leaving the block
completes it, an exception fails it (stop reason `error`, the exception in its metadata) and a
cancellation cancels it. Reporting never breaks the code being tracked: a report that fails
(jobpulse unreachable, or answering an error) is logged and the run goes on, its result or
exception untouched; a run whose job could not be created goes on untracked (`run.job` None).

A job cancelled through the API stops its run: the tracker learns of it at the next heartbeat
(or call of the run; an async tracker with `cancel_stream=True` also waits for it on the job's
live stream, and learns of it at once) and then, in `async with` or on a coroutine, cancels
the task running the tracked code, which ends with `JobCancelled`; in the sync form
`run.cancelled` turns true
and the next `run.heartbeat()`, `first_token()`, `update()`, `raise_if_cancelled()` or stream
item raises `JobCancelled`. The cancelled job gets no second terminal report.
"""

from __future__ import annotations

from jobpulse.tracking.async_runs import AsyncRun, AsyncTracker, track_async_stream
from jobpulse.tracking.reporting import (
    REPORT_ERRORS,
    AsyncReporter,
    JobCancelled,
    Reporter,
    outcome,
)
from jobpulse.tracking.runs import Run, Tracker, track_stream

__all__ = [
    "REPORT_ERRORS",
    "AsyncReporter",
    "AsyncRun",
    "AsyncTracker",
    "JobCancelled",
    "Reporter",
    "Run",
    "Tracker",
    "outcome",
    "track_async_stream",
    "track_stream",
]
