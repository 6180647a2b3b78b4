"""The background reporter every executor integration shares: hooks hand it `Report`s, which
never block and never raise, and one daemon thread per process sends them to jobpulse.

Interface (for an integration's hooks)::

    from jobpulse.integrations.reporter import Reporter
    from jobpulse.integrations.reports import Kind, Report, error_metadata

    reporter = Reporter(url, api_key, executor="rq", heartbeat_s=10.0,
                        on_cancelled=lambda task_id: ...)   # stop that task, if you can
    reporter.report(Report(Kind.PUBLISHED, task_id, task_name, job_type=None,
                           metadata={"queue": "default"}))
    reporter.report(Report(Kind.STARTED, task_id, task_name, metadata={"attempts": 1}))
    reporter.report(Report(Kind.SUCCEEDED, task_id, task_name))
    reporter.report(Report(Kind.FAILED, task_id, task_name, metadata=error_metadata(exc)))
    reporter.report(Report(Kind.RETRIED, task_id, task_name, metadata={"attempts": 2},
                           reason="retry 2: ConnectionError"))
    reporter.report(Report(Kind.REVOKED, task_id, task_name, reason="revoked"))
    reporter.report(Report(Kind.HEARTBEAT, task_id, task_name, metadata=progress))
    reporter.is_cancelled(task_id)   # True once jobpulse said the task's job was cancelled
    reporter.flush(timeout_s=5.0)    # wait until everything queued is sent (at exit: done)
    reporter.stats                   # sent, dropped, rejected, retries, wakeups, delays

What each event does to the job is in reports.py: the task id is the job's idempotency key
(and `metadata.<executor>_task_id`), so whichever event comes first creates the job —
`pending` when published, `running` when a worker that alone is instrumented starts it. The
worker's and the publisher's reports race (two processes): when the task's message says its
publisher reports too, give the worker's reports `publisher_reports=True` and the job is
created `pending` whichever arrives first, then moved to running.

Guarantees: `report()` only puts the report on a bounded queue (`buffer` reports); when it
is full the report is dropped, counted in `stats.dropped` and logged (at most every 10 s).
The thread wakes at the first report, lets more gather for `linger_s` (unless a flush
waits), and sends up to `batch` at once in one request (POST /v1/jobs/reports, see
sender.py) over one reused HTTP connection; jobpulse applies a task's reports in the order
they happened. While jobpulse is unreachable or answers 5xx/429, the reports it did not take
are sent again with exponential backoff (up to `max_backoff_s`), and the others wait behind
them; one it refuses (a 4xx) is logged, counted in `stats.rejected`, and dropped. With
`heartbeat_s`, each running task's job gets a heartbeat whenever it reported nothing for
that long (a killed worker's jobs fall silent and are flagged stuck), and its jobs are
created with `heartbeat_timeout_s` = 3 x `heartbeat_s`. A job found cancelled while its task
runs calls `on_cancelled(task_id)` on the thread. The thread starts on the first report of
each process (so a forked worker gets its own) and the queue is flushed at interpreter exit
for at most `exit_flush_s`.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from jobpulse.integrations.reports import Report
from jobpulse.integrations.sender import REQUEST_REPORTS, Sender, logger, new_client

#: Seconds between two warnings about dropped reports.
DROP_WARNING_EVERY_S = 10.0
#: The first wait before a report is sent again.
FIRST_BACKOFF_S = 0.05
#: How long the thread lets reports gather once one came, by default: each request costs the
#: worker's process about as much as the reports it carries (and a forking worker more, see
#: docs/performance.md), and this keeps them to a few a second.
LINGER_S = 0.2
#: How often a waiting flush cuts the thread's gathering short.
HURRY_S = 0.05


@dataclass
class ReporterStats:
    """What a process's reporter has done so far."""

    #: Reports applied (or found so already, or too late for a job that has ended).
    sent: int = 0
    #: Reports dropped because the buffer was full.
    dropped: int = 0
    #: Reports jobpulse refused (a 4xx): logged and dropped.
    rejected: int = 0
    #: Sends that failed (in whole or in part) and were tried again.
    retries: int = 0
    #: Times the thread woke up to a batch of reports.
    wakeups: int = 0
    #: Requests made (answered or not).
    requests: int = 0
    #: Seconds from each of the last reports' hook to jobpulse's answer.
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


@dataclass
class _Process:
    """The reporter's half that belongs to one process: its queue, thread and connection."""

    pid: int
    queue: queue.Queue[Report | None]
    sender: Sender
    thread: threading.Thread | None = None
    #: Set while a flush waits: the thread sends what it has without gathering more.
    hurry: threading.Event = field(default_factory=threading.Event)


class Reporter:
    """Reports an executor's task events to jobpulse from a background thread."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        executor: str,
        heartbeat_s: float | None = None,
        buffer: int = 10_000,
        batch: int = REQUEST_REPORTS,
        linger_s: float = LINGER_S,
        timeout_s: float = 5.0,
        max_backoff_s: float = 10.0,
        exit_flush_s: float = 5.0,
        on_cancelled: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.executor = executor
        self.heartbeat_s = heartbeat_s
        self.buffer = buffer
        self.batch = batch
        self.linger_s = linger_s
        self.max_backoff_s = max_backoff_s
        self.exit_flush_s = exit_flush_s
        self.on_cancelled = on_cancelled
        self.stats = ReporterStats()
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._transport = transport
        self._lock = threading.Lock()
        self._process: _Process | None = None
        self._last_drop_warning = -DROP_WARNING_EVERY_S
        self._unreachable = False
        atexit.register(self._at_exit)

    def report(self, report: Report) -> bool:
        """Queue `report` for sending; False if the buffer was full and it was dropped."""
        process = self._current()
        try:
            process.queue.put_nowait(report)
        except queue.Full:
            self._dropped()
            return False
        return True

    def is_cancelled(self, task_id: str) -> bool:
        """Whether jobpulse said the job of `task_id` was cancelled."""
        process = self._process
        return process is not None and process.sender.is_cancelled(task_id)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every report queued so far is sent (or given up); False on timeout."""
        process = self._process
        if process is None or process.pid != os.getpid() or process.thread is None:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        waiting = process.queue
        with waiting.all_tasks_done:
            while waiting.unfinished_tasks:
                process.hurry.set()
                left = HURRY_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return False
                waiting.all_tasks_done.wait(min(left, HURRY_S))
        return True

    def close(self, timeout_s: float | None = 5.0) -> bool:
        """Flush, then stop the thread and close the connection; False if not all was sent."""
        flushed = self.flush(timeout_s)
        process = self._process
        if process is not None and process.pid == os.getpid() and process.thread is not None:
            try:
                process.queue.put_nowait(None)
            except queue.Full:
                return False
            process.thread.join(timeout_s)
            if process.thread.is_alive():  # still retrying: it keeps its connection
                return False
            process.sender.client.close()
            self._process = None
        return flushed

    def _at_exit(self) -> None:
        if not self.flush(self.exit_flush_s):
            left = 0 if self._process is None else self._process.queue.qsize()
            logger.warning("jobpulse: exiting with %d reports not sent", left)

    def _current(self) -> _Process:
        """This process's half, made and started on its first report (a fork gets its own)."""
        process = self._process
        pid = os.getpid()
        if process is not None and process.pid == pid and process.thread is not None:
            return process
        with self._lock:
            process = self._process
            if process is None or process.pid != pid:
                client = new_client(self.url, self._api_key, self._timeout_s, self._transport)
                timeout = None if self.heartbeat_s is None else round(self.heartbeat_s * 3, 3)
                sender = Sender(
                    client,
                    self.executor,
                    heartbeat_timeout_s=timeout,
                    on_cancelled=self.on_cancelled,
                )
                process = _Process(pid, queue.Queue(self.buffer), sender)
                self._process = process
            if process.thread is None:
                process.thread = threading.Thread(
                    target=self._run, args=(process,), name="jobpulse-reporter", daemon=True
                )
                process.thread.start()
            return process

    def _dropped(self) -> None:
        with self._lock:
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning < DROP_WARNING_EVERY_S:
                return
            self._last_drop_warning = now
        logger.warning(
            "jobpulse: the report buffer is full (%d reports); %d dropped so far",
            self.buffer,
            self.stats.dropped,
        )

    def _run(self, process: _Process) -> None:
        """The thread: take what is queued, a batch at a time, and send it."""
        waiting = process.queue
        while True:
            try:
                first = waiting.get(timeout=self._wait_s(process.sender))
            except queue.Empty:
                self._beat(process.sender)
                continue
            if first is not None and self.linger_s and waiting.qsize() < self.batch - 1:
                process.hurry.wait(self.linger_s)  # let more gather: one request for them all
                process.hurry.clear()
            batch = [first]
            while len(batch) < self.batch:
                try:
                    batch.append(waiting.get_nowait())
                except queue.Empty:
                    break
            self.stats.wakeups += 1
            reports = [report for report in batch if report is not None]
            if reports:
                self._deliver(process.sender, reports)
            for _ in batch:
                waiting.task_done()
            if len(reports) < len(batch):
                return
            self._beat(process.sender)

    def _wait_s(self, sender: Sender) -> float | None:
        return None if self.heartbeat_s is None else sender.next_heartbeat_in(self.heartbeat_s)

    def _beat(self, sender: Sender) -> None:
        if self.heartbeat_s is None:
            return
        beats = sender.due_heartbeats(self.heartbeat_s)
        if beats:
            self._deliver(sender, beats, retry=False)

    def _deliver(self, sender: Sender, reports: list[Report], *, retry: bool = True) -> None:
        """Send `reports`, again and again those jobpulse cannot take now (if `retry`)."""
        backoff = FIRST_BACKOFF_S
        while True:
            sent = sender.send(reports)
            self.stats.requests += sent.requests
            now = time.monotonic()
            self.stats.sent += len(sent.done)
            self.stats.delays.extend(now - report.at for report in sent.done)
            for report, why in sent.refused:
                self.stats.rejected += 1
                logger.warning("jobpulse refused a report of task %s: %s", report.task_id, why)
            if not sent.again:
                break
            self.stats.retries += 1
            if not self._unreachable:
                self._unreachable = True
                logger.warning("jobpulse: reports wait, %s; retrying", sent.problem)
            if not retry:
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            reports = sent.again
        if self._unreachable:
            self._unreachable = False
            logger.warning("jobpulse: reachable again, reports go on")
