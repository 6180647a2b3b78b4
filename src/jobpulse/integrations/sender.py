"""Applies `Report`s to jobs over HTTP, one at a time, on the reporter's thread: it finds (or
creates, by idempotency key = the task id) each task's job, sends the change, and reads the
answer. Whether a failure is worth retrying is decided here (`RetryLaterError`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx

from jobpulse import __version__
from jobpulse.calls import TERMINAL, error_of
from jobpulse.errors import InvalidTransitionError
from jobpulse.integrations.reports import ENDINGS, RUNNING, Kind, Report, change, creation

logger = logging.getLogger("jobpulse.integrations")
#: How many tasks' job ids a process remembers (the oldest are forgotten first).
REMEMBERED = 10_000


class RetryLaterError(Exception):
    """jobpulse could not take the report now (unreachable, 5xx or 429): send it again."""


class RejectedError(Exception):
    """jobpulse refused the report (a 4xx other than a transition): it is dropped."""


class Sender:
    """Sends reports over one reused `httpx.Client`; remembers each task's job."""

    def __init__(
        self,
        client: httpx.Client,
        executor: str,
        *,
        heartbeat_timeout_s: float | None = None,
        on_cancelled: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.executor = executor
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.on_cancelled = on_cancelled
        #: task id → (job id, status as last seen).
        self.jobs: OrderedDict[str, tuple[str, str]] = OrderedDict()
        #: Tasks whose job was cancelled in jobpulse (their next heartbeat raises).
        self.cancelled: OrderedDict[str, None] = OrderedDict()
        #: Tasks running in this process: their last report and when it was sent.
        self.running: dict[str, tuple[Report, float]] = {}

    def send(self, report: Report) -> None:
        """Apply `report` to its task's job. Raises RetryLaterError or RejectedError."""
        job_id, status = self._job_of(report)
        if status in TERMINAL:
            self._ended(report, status)
            return
        if report.kind is Kind.REVOKED:
            body = {"reason": report.reason} if report.reason else None
            self._apply(report, "POST", f"/v1/jobs/{job_id}/cancel", body)
        elif report.kind is Kind.HEARTBEAT:
            progress = {"progress": dict(report.metadata)} if report.metadata else None
            self._apply(report, "POST", f"/v1/jobs/{job_id}/heartbeat", progress)
        elif (body := change(report, status)) is not None:
            self._apply(report, "PATCH", f"/v1/jobs/{job_id}", body)
        if report.kind in ENDINGS:
            self.jobs.pop(report.task_id, None)
            self.running.pop(report.task_id, None)
        elif report.kind in RUNNING:
            self.running[report.task_id] = (report, time.monotonic())

    def due_heartbeats(self, interval_s: float) -> list[Report]:
        """Heartbeats for the tasks running here that reported nothing for `interval_s`."""
        now = time.monotonic()
        due = [task_id for task_id, (_l, sent) in self.running.items() if now - sent >= interval_s]
        beats = []
        for task_id in due:
            last, _sent = self.running[task_id]
            self.running[task_id] = (last, now)  # tried now, whether or not it gets through
            beats.append(Report(Kind.HEARTBEAT, task_id, last.task_name, last.job_type))
        return beats

    def next_heartbeat_in(self, interval_s: float) -> float:
        """Seconds until the next heartbeat is due (the interval when no task runs)."""
        if not self.running:
            return interval_s
        oldest = min(sent for _report, sent in self.running.values())
        return max(0.0, oldest + interval_s - time.monotonic())

    def is_cancelled(self, task_id: str) -> bool:
        return task_id in self.cancelled

    def _job_of(self, report: Report) -> tuple[str, str]:
        known = self.jobs.get(report.task_id)
        if known is not None:
            return known
        headers = {"Idempotency-Key": report.task_id}
        body = creation(report, self.executor, self.heartbeat_timeout_s)
        job = self._request("POST", "/v1/jobs", body, headers)
        return self._remember(report.task_id, job)

    def _apply(self, report: Report, method: str, path: str, body: Any) -> None:
        try:
            job = self._request(method, path, body)
        except InvalidTransitionError as refused:
            if refused.current_status in TERMINAL:  # it has ended meanwhile
                self._ended(report, refused.current_status)
            else:
                logger.debug("%s of %s refused: %s", report.kind, report.task_id, refused)
            return
        self._remember(report.task_id, job)

    def _ended(self, report: Report, status: str) -> None:
        """The job had already ended when `report` came (`status`)."""
        self.jobs.pop(report.task_id, None)
        self.running.pop(report.task_id, None)
        if status != "cancelled":
            logger.debug("%s of %s: its job is already %s", report.kind, report.task_id, status)
            return
        self._learn_cancelled(report.task_id)
        if report.kind in (Kind.STARTED, Kind.HEARTBEAT, Kind.RETRIED) and self.on_cancelled:
            try:
                self.on_cancelled(report.task_id)
            except Exception:  # a hook of the executor's: log it, go on reporting
                logger.exception("stopping the cancelled task %s failed", report.task_id)

    def _learn_cancelled(self, task_id: str) -> None:
        self.cancelled[task_id] = None
        while len(self.cancelled) > REMEMBERED:
            self.cancelled.popitem(last=False)

    def _remember(self, task_id: str, job: dict[str, Any]) -> tuple[str, str]:
        known = (str(job["id"]), str(job["status"]))
        self.jobs[task_id] = known
        self.jobs.move_to_end(task_id)
        while len(self.jobs) > REMEMBERED:
            self.jobs.popitem(last=False)
        return known

    def _request(
        self, method: str, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The job jobpulse answers with; InvalidTransitionError (JobCancelledError) for a
        409, RejectedError for another 4xx, RetryLaterError when it should be tried again.
        """
        try:
            response = self.client.request(method, path, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise RetryLaterError(f"jobpulse is unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise RetryLaterError(f"jobpulse answered {response.status_code}")
        if response.status_code == 409:
            error = error_of(response)
            if isinstance(error, InvalidTransitionError):
                raise error
        if response.is_error:
            raise RejectedError(f"{method} {path}: {error_of(response)!r}")
        job: dict[str, Any] = response.json()
        return job


def new_client(
    url: str, api_key: str, timeout_s: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    """The one HTTP client of a process's reporter."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": f"jobpulse-integrations/{__version__}",
    }
    return httpx.Client(base_url=url, headers=headers, timeout=timeout_s, transport=transport)
