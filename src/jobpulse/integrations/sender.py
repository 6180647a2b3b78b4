"""Sends `Report`s to jobpulse in batches, on the reporter's thread: one POST
/v1/jobs/reports carries many (each applied to the job its task id names, made if missing),
and its answer says, report by report, what became of it. Whether a failure is worth another
try is decided here.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from jobpulse import __version__
from jobpulse.calls import TERMINAL, error_of
from jobpulse.integrations.reports import ENDINGS, RUNNING, Kind, Report, entry

logger = logging.getLogger("jobpulse.integrations")
#: How many tasks' cancellations a process remembers (the oldest are forgotten first).
REMEMBERED = 10_000
#: The most reports one request carries (jobpulse's bound).
REQUEST_REPORTS = 500
#: The most bytes of reports one request carries (jobpulse takes bodies of up to 1 MiB).
REQUEST_BYTES = 512 * 1024
#: What jobpulse answers a report it could not apply now (it may be sent again as it is).
RETRY_CODES = frozenset({"unavailable", "too_many_requests", "read_timeout", "internal_error"})
#: What it answers a report of a change its job can no longer take.
REFUSED_MOVES = frozenset({"invalid_transition", "job_cancelled"})
PATH = "/v1/jobs/reports"
#: Compact JSON of what jobpulse takes (no NaN or infinity), one encoder for every report.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class RetryLaterError(Exception):
    """jobpulse could not take the request now (unreachable, 5xx or 429): send it again."""


class RejectedError(Exception):
    """jobpulse refused the whole request (a 4xx): its reports are dropped."""


@dataclass
class Sent:
    """What became of the reports given to `Sender.send`."""

    #: Applied (or found so already, or too late for a job that has ended).
    done: list[Report] = field(default_factory=list)
    #: Refused by jobpulse (a 4xx), with why: dropped.
    refused: list[tuple[Report, str]] = field(default_factory=list)
    #: Not applied now, to send again in this order (with the reports of their tasks after).
    again: list[Report] = field(default_factory=list)
    #: Why some are to send again.
    problem: str | None = None
    #: Requests made (answered or not).
    requests: int = 0


class Sender:
    """Sends reports over one reused `httpx.Client`; follows the tasks running here."""

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
        #: Tasks whose job was cancelled in jobpulse (their next heartbeat raises).
        self.cancelled: OrderedDict[str, None] = OrderedDict()
        #: Tasks running in this process: their last report and when it was sent.
        self.running: dict[str, tuple[Report, float]] = {}

    def send(self, reports: Sequence[Report]) -> Sent:
        """Apply `reports`, in as few requests as their number and size allow."""
        sent = Sent()
        waiting: set[str] = set()  # tasks with a report to send again: their later ones wait
        for chunk in self._chunks(reports, sent):
            ready = [(report, body) for report, body in chunk if report.task_id not in waiting]
            sent.again += [report for report, _ in chunk if report.task_id in waiting]
            if not ready:
                continue
            sent.requests += 1
            try:
                results = self._post([body for _, body in ready])
            except RetryLaterError as exc:
                sent.again += [report for report, _ in ready]
                waiting.update(report.task_id for report, _ in ready)
                sent.problem = str(exc)
                continue
            except RejectedError as exc:
                sent.refused += [(report, str(exc)) for report, _ in ready]
                continue
            for (report, _), result in zip(ready, results, strict=True):
                self._settle(report, result, sent, waiting)
        return sent

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

    def _chunks(self, reports: Sequence[Report], sent: Sent) -> Iterator[list[tuple[Report, str]]]:
        """`reports` encoded, in requests of at most REQUEST_REPORTS and REQUEST_BYTES (one
        larger alone); one that JSON cannot carry is refused here.
        """
        chunk: list[tuple[Report, str]] = []
        size = 0
        for report in reports:
            try:
                body = _ENCODER.encode(entry(report, self.executor, self.heartbeat_timeout_s))
            except (TypeError, ValueError) as exc:
                sent.refused.append((report, f"it cannot be sent as JSON: {exc}"))
                continue
            if chunk and (len(chunk) == REQUEST_REPORTS or size + len(body) > REQUEST_BYTES):
                yield chunk
                chunk, size = [], 0
            chunk.append((report, body))
            size += len(body) + 1
        if chunk:
            yield chunk

    def _post(self, bodies: list[str]) -> list[dict[str, Any]]:
        """The results of one request of `bodies`; RetryLaterError when it should be sent
        again, RejectedError when jobpulse refused it whole.
        """
        content = ('{"reports":[' + ",".join(bodies) + "]}").encode()  # ASCII: escaped
        headers = {"Content-Type": "application/json"}
        try:
            response = self.client.post(PATH, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise RetryLaterError(f"jobpulse is unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise RetryLaterError(f"jobpulse answered {response.status_code}")
        if response.is_error:
            raise RejectedError(f"POST {PATH}: {error_of(response)!r}")
        try:
            results: list[dict[str, Any]] = response.json()["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RejectedError(f"POST {PATH}: an answer without results ({exc!r})") from exc
        if len(results) != len(bodies):
            raise RejectedError(f"POST {PATH}: {len(results)} results for {len(bodies)} reports")
        return results

    def _settle(
        self, report: Report, result: dict[str, Any], sent: Sent, waiting: set[str]
    ) -> None:
        """Take in what jobpulse answered to `report`."""
        error = result.get("error")
        if error is None:
            self._applied(report, str(result.get("status")))
            sent.done.append(report)
            return
        code, message = error.get("code"), error.get("message")
        if code in RETRY_CODES:
            sent.again.append(report)
            waiting.add(report.task_id)
            sent.problem = f"jobpulse answered {code}: {message}"
        elif code in REFUSED_MOVES:
            current = error.get("current_status")
            if current in TERMINAL:  # it has ended meanwhile
                self._ended(report, str(current))
            else:
                logger.debug("%s of %s refused: %s", report.kind, report.task_id, message)
            sent.done.append(report)
        else:
            sent.refused.append((report, f"{code}: {message}"))

    def _applied(self, report: Report, status: str) -> None:
        if report.kind in ENDINGS:
            self.running.pop(report.task_id, None)
        elif status in TERMINAL:  # it had ended before this report came
            self._ended(report, status)
        elif report.kind in RUNNING:
            self.running[report.task_id] = (report, time.monotonic())

    def _ended(self, report: Report, status: str) -> None:
        """The job had already ended when `report` came (`status`)."""
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


def new_client(
    url: str, api_key: str, timeout_s: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    """The one HTTP client of a process's reporter."""
    headers = {
        "Authorization": f"Bearer {api_key}",
        "User-Agent": f"jobpulse-integrations/{__version__}",
    }
    return httpx.Client(base_url=url, headers=headers, timeout=timeout_s, transport=transport)
