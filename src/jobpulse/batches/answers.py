"""The providers' answers read as jobpulse's: a batch as a `Snapshot` (Anthropic's Message
Batch, OpenAI's Batch) and an ended batch's per-request results counted in a `Tally`. Pure:
the provider client (batches/providers.py) fetches, these functions read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jobpulse.batches.rules import ERROR_CHARS, ERRORS_KEPT, Provider, Snapshot, storable
from jobpulse.domain import JobStatus


class UnexpectedAnswerError(Exception):
    """A provider answered 2xx with something that is not a batch."""


def _counts(body: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, int]:
    found = body.get("request_counts")
    if not isinstance(found, Mapping):
        raise UnexpectedAnswerError("no request_counts")
    counts = {}
    for name in names:
        value = found.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UnexpectedAnswerError(f"request_counts.{name} is not a count")
        counts[name] = value
    return counts


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return storable(value) if isinstance(value, str) and value else None


def _status(body: Mapping[str, Any], name: str, known: frozenset[str]) -> str:
    value = body.get(name)
    if not isinstance(value, str) or value not in known:
        shown = storable(repr(value), 60) if isinstance(value, str | None) else type(value).__name__
        raise UnexpectedAnswerError(f"{name} is {shown}, not one of {', '.join(sorted(known))}")
    return value


_ANTHROPIC_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")
_ANTHROPIC_STATUSES = frozenset({"in_progress", "canceling", "ended"})


def read_anthropic(body: Mapping[str, Any]) -> Snapshot:
    """A Message Batch (`GET /v1/messages/batches/{id}`) as a Snapshot."""
    status = _status(body, "processing_status", _ANTHROPIC_STATUSES)
    counts = _counts(body, _ANTHROPIC_COUNTS)
    total = sum(counts.values())
    files = {"results_url": url} if (url := _text(body, "results_url")) else {}
    outcome = None
    reason = None
    if status == "ended":
        if _text(body, "cancel_initiated_at"):
            outcome = JobStatus.CANCELLED
        elif total and counts["expired"] == total:
            outcome = JobStatus.EXPIRED
        elif total and counts["errored"] == total:
            outcome = JobStatus.FAILED
        else:
            outcome = JobStatus.COMPLETED
        tally = ", ".join(f"{n} {name}" for name, n in counts.items() if n and name != "processing")
        reason = f"anthropic batch ended: {tally or 'no requests'}"
    return Snapshot(
        provider_status=status,
        outcome=outcome,
        counts=counts,
        done=total - counts["processing"],
        total=total,
        files=files,
        expires_at=_text(body, "expires_at"),
        reason=reason,
    )


_OPENAI_COUNTS = ("total", "completed", "failed")
_OPENAI_RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
_OPENAI_ENDS = {
    "completed": JobStatus.COMPLETED,
    "cancelled": JobStatus.CANCELLED,
    "expired": JobStatus.EXPIRED,
    "failed": JobStatus.FAILED,
}


def read_openai(body: Mapping[str, Any]) -> Snapshot:
    """A Batch (`GET /v1/batches/{id}`) as a Snapshot."""
    status = _status(body, "status", _OPENAI_RUNNING | frozenset(_OPENAI_ENDS))
    counts = _counts(body, _OPENAI_COUNTS)
    files = {
        name: ref for name in ("output_file_id", "error_file_id") if (ref := _text(body, name))
    }
    outcome = _OPENAI_ENDS.get(status)
    if outcome == JobStatus.COMPLETED and counts["total"] and counts["failed"] == counts["total"]:
        outcome = JobStatus.FAILED
    reason = None
    if outcome is not None:
        reason = (
            f"openai batch {status}: {counts['completed']} completed, {counts['failed']} failed"
        )
        if (why := _openai_errors(body)) is not None:
            reason += f" ({why})"
    expires = body.get("expires_at")
    return Snapshot(
        provider_status=status,
        outcome=outcome,
        counts=counts,
        done=counts["completed"] + counts["failed"],
        total=counts["total"],
        files=files,
        expires_at=_epoch(expires) if isinstance(expires, int) else None,
        reason=reason,
    )


def _epoch(seconds: int) -> str | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def _openai_errors(body: Mapping[str, Any]) -> str | None:
    """The first message of a failed batch's `errors` list, if it has one."""
    errors = body.get("errors")
    data = errors.get("data") if isinstance(errors, Mapping) else None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        message = data[0].get("message")
        if isinstance(message, str):
            return storable(message, ERROR_CHARS)
    return None


READERS = {Provider.ANTHROPIC: read_anthropic, Provider.OPENAI: read_openai}


class Tally:
    """Per-request outcomes of an ended batch, counted line by line, with the first few
    error messages: the summary put on its job. Bounded whatever the batch's size.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.errors: list[dict[str, str | None]] = []
        self.partial = False

    def add(self, outcome: str, custom_id: object = None, message: object = None) -> None:
        """Count one request's outcome (and keep its error message while there is room)."""
        self.counts[outcome] += 1
        if message is not None and len(self.errors) < ERRORS_KEPT:
            self.errors.append(
                {
                    "custom_id": storable(custom_id, 128) if isinstance(custom_id, str) else None,
                    "message": storable(str(message), ERROR_CHARS),
                }
            )

    def add_anthropic(self, line: Any) -> None:
        """One line of a Message Batch's results JSONL."""
        result = line.get("result") if isinstance(line, Mapping) else None
        kind = result.get("type") if isinstance(result, Mapping) else None
        if not isinstance(result, Mapping) or not isinstance(kind, str):
            self.add("unreadable")
            return
        message = None
        if kind == "errored":
            message = _message(result.get("error")) or "errored"
        self.add(kind, line.get("custom_id"), message)

    def add_openai(self, line: Any) -> None:
        """One line of a Batch's output or error file."""
        if not isinstance(line, Mapping):
            self.add("unreadable")
            return
        response = line.get("response")
        status = response.get("status_code") if isinstance(response, Mapping) else None
        if line.get("error") is None and isinstance(status, int) and 200 <= status < 300:
            self.add("succeeded")
            return
        body = response.get("body") if isinstance(response, Mapping) else None
        message = _message(line.get("error")) or _message(body) or f"HTTP {status}"
        self.add("errored", line.get("custom_id"), message)

    def summary(self) -> dict[str, Any]:
        """The summary put on the job as `metadata.results`."""
        found: dict[str, Any] = {"counts": dict(self.counts), "errors": self.errors}
        if self.partial:
            found["partial"] = True
        return found


def _message(error: object) -> str | None:
    """The message of a provider error object, however deeply the provider nests it."""
    for _ in range(4):
        if not isinstance(error, Mapping):
            return None
        message = error.get("message")
        if isinstance(message, str):
            return message
        error = error.get("error")
    return None
