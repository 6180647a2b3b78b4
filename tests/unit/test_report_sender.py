"""The reporter's reading of what POST /v1/jobs/reports answers, report by report, from a
mock transport (tests/integrations/test_reporter.py runs it against the real server): a report
jobpulse could not apply now is sent again in order with its task's later ones, a refused one
is dropped alone, one that reached a cancelled job stops its task.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from jobpulse.integrations.reporter import Reporter
from jobpulse.integrations.reports import Kind, Report
from jobpulse.integrations.sender import Sender

UNAVAILABLE = {"code": "unavailable", "message": "the database is unavailable"}


class Scripted:
    """Answers each request's reports with the result `answer` gives for each (a dict, or
    None for `{"status": "running"}`), and keeps every request's reports.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[list[dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        reports = json.loads(request.content)["reports"]
        self.requests.append(reports)
        results = []
        for report in reports:
            result = self.answer(len(self.requests), report) or {"status": "running"}
            results.append({"idempotency_key": report["idempotency_key"], "job_id": "j"} | result)
        return httpx.Response(200, json={"results": results})


def _sender(script: Scripted, **options: Any) -> Sender:
    client = httpx.Client(base_url="http://jobpulse.test", transport=httpx.MockTransport(script))
    return Sender(client, "demo", **options)


def _keys(reports: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(r["idempotency_key"], (r.get("update") or {}).get("status")) for r in reports]


def test_what_jobpulse_could_not_apply_now_goes_again_in_order_with_its_tasks_later_reports() -> (
    None
):
    def answer(request: int, report: dict[str, Any]) -> dict[str, Any] | None:
        if request == 1 and report["idempotency_key"] == "a":
            return {"error": UNAVAILABLE}
        return None

    script = Scripted(answer)
    sender = _sender(script)
    reports = [
        Report(Kind.STARTED, "a", "t"),
        Report(Kind.STARTED, "b", "t"),
        Report(Kind.SUCCEEDED, "a", "t"),
        Report(Kind.SUCCEEDED, "b", "t"),
    ]

    sent = sender.send(reports)

    assert sent.done == [reports[1], reports[3]]
    assert sent.again == [reports[0], reports[2]], "a's reports, in their order"
    assert sent.problem == "jobpulse answered unavailable: the database is unavailable"
    again = sender.send(sent.again)
    assert (again.done, again.again, again.refused) == ([reports[0], reports[2]], [], [])
    assert _keys(script.requests[1]) == [("a", "running"), ("a", "completed")]


def test_a_refused_report_is_dropped_alone() -> None:
    def answer(_request: int, report: dict[str, Any]) -> dict[str, Any] | None:
        if report["job"]["job_type"] == "bad":
            return {"error": {"code": "validation_error", "message": "metadata is too big"}}
        return None

    sender = _sender(Scripted(answer))
    bad, good = Report(Kind.STARTED, "a", "bad"), Report(Kind.STARTED, "b", "good")
    sent = sender.send([bad, good])
    assert (sent.done, sent.again) == ([good], [])
    assert sent.refused == [(bad, "validation_error: metadata is too big")]


def test_a_report_json_cannot_carry_is_refused_before_sending() -> None:
    script = Scripted(lambda _request, _report: None)
    sender = _sender(script)
    odd = Report(Kind.HEARTBEAT, "a", "t", metadata={"at": object()})
    nan = Report(Kind.HEARTBEAT, "b", "t", metadata={"ratio": float("nan")})
    fine = Report(Kind.HEARTBEAT, "c", "t")
    sent = sender.send([odd, nan, fine])
    assert sent.done == [fine]
    assert [report for report, _why in sent.refused] == [odd, nan]
    assert [[r["idempotency_key"] for r in reports] for reports in script.requests] == [["c"]]


def test_a_report_that_reaches_a_cancelled_job_stops_its_task() -> None:
    cancelled = {
        "code": "job_cancelled",
        "message": "job is already cancelled",
        "current_status": "cancelled",
        "requested_status": "running",
    }
    stopped: list[str] = []
    sender = _sender(
        Scripted(lambda _r, _report: {"error": cancelled}), on_cancelled=stopped.append
    )
    sent = sender.send([Report(Kind.STARTED, "a", "t"), Report(Kind.SUCCEEDED, "b", "t")])
    assert len(sent.done) == 2, "settled: nothing to send again"
    assert stopped == ["a"], "a running task is stopped, an ended one is not"
    assert sender.is_cancelled("a")
    assert sender.is_cancelled("b")


def test_a_reporter_sends_again_what_was_not_applied_and_counts_it_once() -> None:
    def answer(request: int, report: dict[str, Any]) -> dict[str, Any] | None:
        return {"error": UNAVAILABLE} if request == 1 else None

    script = Scripted(answer)
    transport = httpx.MockTransport(script)
    reporter = Reporter("http://jobpulse.test", "key", executor="demo", transport=transport)
    reporter.report(Report(Kind.PUBLISHED, "a", "t"))
    assert reporter.close(timeout_s=10)
    assert (reporter.stats.sent, reporter.stats.retries, reporter.stats.rejected) == (1, 1, 0)
    assert [_keys(reports) for reports in script.requests] == [[("a", None)], [("a", None)]]
