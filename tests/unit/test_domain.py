"""The state machine and its rules, checked exhaustively."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jobpulse.documents import MAX_BYTES as METADATA_MAX_BYTES
from jobpulse.domain import (
    STOP_REASON_STATUS,
    Job,
    JobChange,
    JobStatus,
    StopReason,
    allowed_sources,
    can_transition,
    check_duration,
    check_metadata,
    check_transition,
    elapsed_ns,
    merge_metadata,
    parse_status,
    parse_stop_reason,
    plan_change,
    plan_first_token,
    plan_heartbeat,
    resolve_outcome,
)
from jobpulse.errors import InvalidTransitionError, ValidationError
from jobpulse.listing import JobFilter, Page

S = JobStatus
ENDS = ("completed", "failed", "cancelled", "expired")
#: DESIGN §2, written out pair by pair.
ALLOWED = {
    ("created", "pending"),
    ("created", "running"),
    *(("created", end) for end in ENDS),
    ("pending", "running"),
    *(("pending", end) for end in ENDS),
    *(("running", end) for end in ENDS),
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(**fields: object) -> Job:
    base = Job(
        id="job-1",
        organization_id="org",
        user_id="u",
        job_type="job",
        status=S.CREATED,
        created_at=T0,
        updated_at=T0,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_transition_table_matches_the_design(current: JobStatus, target: JobStatus) -> None:
    expected = (current.value, target.value) in ALLOWED
    assert can_transition(current, target) is expected
    assert (current in allowed_sources(target)) is expected
    if expected:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransitionError) as caught:
            check_transition(current, target)
        assert caught.value.current_status == current
        assert caught.value.requested_status == target
        assert current.value in caught.value.message


COMPLETING = {"end_turn", "max_steps", "tool_rule", "requires_approval"}
FAILING = {
    "error",
    "invalid_tool_call",
    "no_tool_call",
    "invalid_llm_response",
    "llm_api_error",
    "max_tokens_exceeded",
    "context_window_overflow_in_system_prompt",
    "insufficient_credits",
}


def expected_status(reason: StopReason) -> str:
    if reason.value in COMPLETING:
        return "completed"
    if reason.value in FAILING:
        return "failed"
    return {"cancelled": "cancelled", "timeout": "expired", "heartbeat_lost": "expired"}[
        reason.value
    ]


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_implies_its_status(reason: StopReason) -> None:
    assert STOP_REASON_STATUS[reason].value == expected_status(reason)
    assert resolve_outcome(None, reason) == STOP_REASON_STATUS[reason]


@pytest.mark.parametrize(("reason", "status"), list(itertools.product(StopReason, S)))
def test_a_stop_reason_may_not_contradict_the_status(reason: StopReason, status: S) -> None:
    if status.value == expected_status(reason):
        assert resolve_outcome(status, reason) == status
    else:
        with pytest.raises(ValidationError, match="means status"):
            resolve_outcome(status, reason)


def test_no_stop_reason_keeps_the_status() -> None:
    assert resolve_outcome(S.RUNNING, None) == S.RUNNING
    assert resolve_outcome(None, None) is None


@pytest.mark.parametrize("value", ["Completed", "COMPLETED", "done", "", 3, None])
def test_unknown_or_wrong_case_status_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="unknown status") as caught:
        parse_status(value)
    assert "created, pending, running" in caught.value.message


def test_statuses_and_stop_reasons_parse_exactly() -> None:
    assert [parse_status(s.value) for s in S] == list(S)
    assert parse_stop_reason("end_turn") == StopReason.END_TURN
    with pytest.raises(ValidationError, match="unknown stop_reason"):
        parse_stop_reason("End_Turn")


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None])
def test_metadata_must_be_an_object(value: object) -> None:
    with pytest.raises(ValidationError, match="must be a JSON object"):
        check_metadata(value)


def test_metadata_size_limit_is_64_kib() -> None:
    overhead = len('{"k":""}')
    assert check_metadata({"k": "x" * (METADATA_MAX_BYTES - overhead)})
    with pytest.raises(ValidationError, match="limit is 65536"):
        check_metadata({"k": "x" * (METADATA_MAX_BYTES - overhead + 1)})


def test_metadata_must_be_json() -> None:
    with pytest.raises(ValidationError, match=r"metadata\.k is a set, not a JSON value"):
        check_metadata({"k": {1, 2}})


def test_merge_is_shallow_and_null_removes() -> None:
    current = {"a": 1, "nested": {"x": 1, "y": 2}, "gone": True}
    merged = merge_metadata(current, {"nested": {"x": 9}, "gone": None, "new": "v"})
    assert merged == {"a": 1, "nested": {"x": 9}, "new": "v"}
    assert current["gone"] is True  # the input is not changed


def test_merge_refuses_to_outgrow_64_kib() -> None:
    half = {"a": "x" * 40_000}
    with pytest.raises(ValidationError, match="metadata once merged"):
        merge_metadata(half, {"b": "x" * 40_000})
    assert merge_metadata(half, {"a": None, "b": "y"}) == {"b": "y"}


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_timings_are_non_negative_integers(value: object) -> None:
    with pytest.raises(ValidationError, match="ttft_ns"):
        check_duration("ttft_ns", value)


def test_elapsed_is_exact_nanoseconds_and_never_negative() -> None:
    later = T0 + timedelta(seconds=2, microseconds=345)
    assert elapsed_ns(T0, later) == 2_000_345_000
    assert elapsed_ns(later, T0) == 0


def test_entering_running_stamps_started_at_once() -> None:
    now = T0 + timedelta(seconds=1)
    plan = plan_change(make_job(status=S.PENDING), JobChange(status=S.RUNNING), now, "u")
    assert plan.values["started_at"] == now
    assert plan.values["status"] == S.RUNNING
    assert plan.expected == S.PENDING
    assert plan.event is not None
    assert plan.event.applied
    assert (plan.event.from_status, plan.event.to_status) == (S.PENDING, S.RUNNING)


@pytest.mark.parametrize("end", sorted(S(e) for e in ENDS))
def test_terminal_stamps_completed_at_and_duration(end: JobStatus) -> None:
    started = T0 + timedelta(seconds=1)
    now = T0 + timedelta(seconds=4)
    job = make_job(status=S.RUNNING, started_at=started)
    plan = plan_change(job, JobChange(status=end), now, "u")
    assert plan.values["completed_at"] == now
    assert plan.values["total_duration_ns"] == 3_000_000_000


def test_duration_counts_from_creation_when_never_run() -> None:
    now = T0 + timedelta(seconds=5)
    plan = plan_change(make_job(), JobChange(status=S.CANCELLED), now, "u")
    assert plan.values["total_duration_ns"] == 5_000_000_000
    assert "started_at" not in plan.values


def test_supplied_duration_wins() -> None:
    plan = plan_change(
        make_job(status=S.RUNNING, started_at=T0),
        JobChange(status=S.COMPLETED, total_duration_ns=7),
        T0 + timedelta(seconds=1),
        "u",
    )
    assert plan.values["total_duration_ns"] == 7


def test_rejected_change_writes_only_the_attempt() -> None:
    job = make_job(status=S.COMPLETED, completed_at=T0)
    plan = plan_change(job, JobChange(status=S.RUNNING, metadata={"k": 1}), T0, "u")
    assert plan.values == {}
    assert isinstance(plan.error, InvalidTransitionError)
    assert plan.event is not None
    assert not plan.event.applied
    assert (plan.event.from_status, plan.event.to_status) == (S.COMPLETED, S.RUNNING)


def test_metadata_only_change_needs_no_transition() -> None:
    job = make_job(status=S.COMPLETED, metadata={"a": 1})
    plan = plan_change(job, JobChange(metadata={"b": 2}), T0, "u")
    assert plan.values["metadata"] == {"a": 1, "b": 2}
    assert plan.event is None
    assert plan.error is None


@pytest.mark.parametrize("status", sorted(S(s) for s in ("created", "pending", "running")))
def test_a_reason_without_a_status_is_a_note_in_an_active_jobs_history(status: JobStatus) -> None:
    job = make_job(status=status)
    plan = plan_change(job, JobChange(metadata={"attempts": 2}, reason="retry 2: boom"), T0, "w")
    assert plan.values["metadata"] == {"attempts": 2}
    assert plan.event is not None
    assert plan.event.applied
    assert (plan.event.from_status, plan.event.to_status) == (status, status)
    assert (plan.event.reason, plan.event.actor) == ("retry 2: boom", "w")
    assert plan.error is None


def test_a_reason_on_an_ended_job_notes_nothing() -> None:
    job = make_job(status=S.COMPLETED, completed_at=T0)
    assert plan_change(job, JobChange(reason="late"), T0, "w").event is None


def test_heartbeat_clears_stuck_with_an_event() -> None:
    job = make_job(status=S.RUNNING, stuck_since=T0, metadata={"p": 1})
    now = T0 + timedelta(seconds=3)
    plan = plan_heartbeat(job, {"p": 2}, now, "u")
    assert plan.values == {
        "heartbeat_at": now,
        "updated_at": now,
        "metadata": {"p": 2},
        "stuck_since": None,
    }
    assert plan.event is not None
    assert plan.event.to_status == S.RUNNING
    assert plan.event.reason == "heartbeat resumed"


def test_heartbeat_on_an_ended_job_is_refused() -> None:
    plan = plan_heartbeat(make_job(status=S.CANCELLED), None, T0, "u")
    assert isinstance(plan.error, InvalidTransitionError)
    assert plan.error.current_status == S.CANCELLED
    assert plan.values == {}


def test_first_token_is_recorded_once() -> None:
    job = make_job(status=S.RUNNING, started_at=T0)
    plan = plan_first_token(job, T0 + timedelta(milliseconds=250))
    assert plan.values["ttft_ns"] == 250_000_000
    assert plan_first_token(replace(job, ttft_ns=5), T0 + timedelta(seconds=9)).values == {}


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_page_limit_bounds(limit: int) -> None:
    with pytest.raises(ValidationError, match="limit must be between 1 and 1000"):
        Page(limit=limit)


@pytest.mark.parametrize(
    ("ascending", "before", "after", "backwards"),
    [
        (True, None, None, False),
        (True, "c", None, True),
        (True, None, "c", False),
        (True, "c", "c", False),
        (False, None, None, True),
        (False, "c", None, True),
        (False, None, "c", False),
        (False, "c", "c", True),
    ],
)
def test_page_reads_next_to_its_cursor(
    ascending: bool, before: str | None, after: str | None, backwards: bool
) -> None:
    assert Page(ascending=ascending, before=before, after=after).reads_backwards is backwards


def test_filter_refuses_an_empty_time_range() -> None:
    with pytest.raises(ValidationError, match="created_after is later"):
        JobFilter(created_after=T0 + timedelta(seconds=1), created_before=T0)


@pytest.mark.parametrize("key", ["", 'a"b', "a b", "x" * 129])
def test_filter_refuses_odd_metadata_keys(key: str) -> None:
    with pytest.raises(ValidationError, match="metadata filter key"):
        JobFilter(metadata={key: "v"})
