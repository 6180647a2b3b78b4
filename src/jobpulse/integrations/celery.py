"""Celery: `instrument(app, url=..., api_key=...)` reports every task as a jobpulse job through
Celery's signals, with no change to task code; `heartbeat()` inside a task says it is alive
and raises `JobCancelled` once its job was cancelled in jobpulse.

published (after_task_publish) → `pending`; started (task_prerun) → `running`, created running
if the publisher is not instrumented; success → `completed`; failure → `failed` (stop reason
`error`, `metadata.error_type`/`error_message`); retry → a history note and
`metadata.attempts`; revoked → `cancelled`. The task id is the job's idempotency key and
`metadata.celery_task_id`. A job cancelled in jobpulse stops its task: its next `heartbeat()`
raises `JobCancelled`, and on a pool that can terminate a task (prefork) the worker revokes it
with `terminate=True` as soon as the reporter hears of it (it asks every `heartbeat_s`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import celery
from celery import signals

from jobpulse.errors import JobCancelledError
from jobpulse.integrations.reporter import Reporter
from jobpulse.integrations.reports import Kind, Report, error_metadata

#: Raised by `heartbeat()` in a task whose job was cancelled (the SDK's JobCancelled).
JobCancelled = JobCancelledError
#: Celery's own tasks (chord unlocking, result cleanup) are not reported.
INTERNAL_PREFIX = "celery."

#: The message header an instrumented publisher sets (a task's request shows it).
PUBLISHER_REPORTS = "jobpulse_publisher_reports"

_installed: dict[int, Instrumentation] = {}


class Instrumentation:
    """The signal receivers of one instrumented app and the reporter they feed."""

    def __init__(
        self,
        app: celery.Celery,
        reporter: Reporter,
        job_type: str | None,
        revoke_on_cancel: bool,
    ) -> None:
        self.app = app
        self.reporter = reporter
        self.job_type = job_type
        self.revoke_on_cancel = revoke_on_cancel
        reporter.on_cancelled = self._stop
        self._receivers = [
            (signals.before_task_publish, self._marked),
            (signals.after_task_publish, self._published),
            (signals.task_prerun, self._started),
            (signals.task_success, self._succeeded),
            (signals.task_failure, self._failed),
            (signals.task_retry, self._retried),
            (signals.task_revoked, self._revoked),
            (signals.worker_process_shutdown, self._flush),
            (signals.worker_shutdown, self._flush),
        ]
        for signal, receiver in self._receivers:
            signal.connect(receiver, weak=False)

    def uninstrument(self) -> None:
        """Disconnect the receivers and send what is queued (for at most 5 s)."""
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        _installed.pop(id(self.app), None)
        self.reporter.close(timeout_s=5.0)

    def report(self, kind: Kind, task_id: str | None, name: str | None, **fields: Any) -> None:
        """Queue one event of task `task_id` (Celery's own tasks are left out)."""
        if not task_id or not name or name.startswith(INTERNAL_PREFIX):
            return
        if "metadata" in fields:  # what Celery did not say is left out, not set null
            fields["metadata"] = {k: v for k, v in fields["metadata"].items() if v is not None}
        self.reporter.report(Report(kind, task_id, name, self.job_type, **fields))

    def _ours(self, task: Any) -> bool:
        return getattr(task, "app", None) is self.app

    def _marked(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        """Say in the message that its publisher reports it (the worker reads it back)."""
        if headers is not None:
            headers[PUBLISHER_REPORTS] = True

    def _published(
        self,
        sender: str | None = None,
        body: Any = None,
        headers: Mapping[str, Any] | None = None,
        routing_key: str | None = None,
        **_: Any,
    ) -> None:
        described: Mapping[str, Any] = headers or (body if isinstance(body, Mapping) else {})
        if described.get("retries"):  # a retry's message: the job exists, the retry is noted
            return
        metadata = {"queue": routing_key or None, "retries": 0}
        self.report(Kind.PUBLISHED, described.get("id"), sender, metadata=metadata)

    def _started(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        if not self._ours(task):
            return
        request = task.request
        delivery = getattr(request, "delivery_info", None) or {}
        retries = int(getattr(request, "retries", 0) or 0)
        metadata = {
            "attempts": retries + 1,
            "retries": retries,
            "queue": delivery.get("routing_key"),
            "worker": getattr(request, "hostname", None),
        }
        announced = bool(getattr(request, PUBLISHER_REPORTS, False))
        self.report(
            Kind.STARTED, task_id, task.name, metadata=metadata, publisher_reports=announced
        )

    def _succeeded(self, sender: Any = None, **_: Any) -> None:
        if self._ours(sender):
            self.report(Kind.SUCCEEDED, sender.request.id, sender.name)

    def _failed(
        self,
        sender: Any = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        if not self._ours(sender) or isinstance(exception, JobCancelledError):
            return  # a task that stopped because its job was cancelled: it has ended
        error = exception if exception is not None else RuntimeError("unknown failure")
        self.report(Kind.FAILED, task_id, sender.name, metadata=error_metadata(error))

    def _retried(
        self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any
    ) -> None:
        if not self._ours(sender) or request is None:
            return
        attempts = int(getattr(request, "retries", 0) or 0) + 1
        cause = getattr(reason, "exc", None) or reason  # Celery's Retry wraps the error
        cause = cause if isinstance(cause, BaseException) else None
        note = f"retry after attempt {attempts}: {reason}"[:1000]
        metadata: dict[str, Any] = {"attempts": attempts}
        if cause is not None:
            metadata |= {f"last_{k}": v for k, v in error_metadata(cause).items()}
        self.report(Kind.RETRIED, request.id, sender.name, metadata=metadata, reason=note)

    def _revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        expired: bool = False,
        **_: Any,
    ) -> None:
        if request is None or (sender is not None and not self._ours(sender)):
            return
        name = getattr(sender, "name", None) or getattr(request, "task", None)
        cause = "expired" if expired else "terminated" if terminated else "revoked"
        self.report(Kind.REVOKED, request.id, name, reason=f"celery: {cause}")

    def _flush(self, **_: Any) -> None:
        self.reporter.flush(self.reporter.exit_flush_s)

    def _stop(self, task_id: str) -> None:
        """The job of a running task was cancelled in jobpulse: terminate the task where the
        pool can (its heartbeat() raises in any case).
        """
        if self.revoke_on_cancel:
            self.app.control.revoke(task_id, terminate=True, signal="SIGTERM")


def instrument(
    app: celery.Celery,
    *,
    url: str,
    api_key: str,
    job_type: str | None = None,
    heartbeat_s: float | None = 10.0,
    revoke_on_cancel: bool = True,
    **reporter_options: Any,
) -> Instrumentation:
    """Report every task of `app` to jobpulse at `url` (the publisher's side and the
    worker's side both; either alone works).

    `job_type` replaces the task name as the jobs' type. With `heartbeat_s` each running
    task's job gets a heartbeat that often and is created with `heartbeat_timeout_s` three
    times that, so a killed worker's jobs are flagged stuck. Other options go to the
    `Reporter` (buffer, batch, linger_s, timeout_s, max_backoff_s, exit_flush_s, transport).
    """
    previous = _installed.pop(id(app), None)
    if previous is not None:
        previous.uninstrument()
    reporter = Reporter(
        url, api_key, executor="celery", heartbeat_s=heartbeat_s, **reporter_options
    )
    installed = Instrumentation(app, reporter, job_type, revoke_on_cancel)
    _installed[id(app)] = installed
    return installed


def heartbeat(**progress: Any) -> None:
    """Inside a task: say it is alive, merging `progress` into its job's metadata. Raises
    `JobCancelled` once the job was cancelled in jobpulse. Never blocks; outside a task or
    an instrumented app it does nothing.
    """
    task = celery.current_task
    task_id = None if task is None else task.request.id
    installed = None if task is None else _installed.get(id(task.app))
    if installed is None or task_id is None:
        return
    if installed.reporter.is_cancelled(task_id):
        raise JobCancelled(
            "the job was cancelled", current_status="cancelled", requested_status=None
        )
    installed.report(Kind.HEARTBEAT, task_id, task.name, metadata=progress)
