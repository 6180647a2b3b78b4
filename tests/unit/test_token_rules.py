"""The pure rules of scoped tokens: what a scope holds, how it narrows a stream's filters,
its JSON, lifetimes, and how a token is told from a key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobpulse.errors import ValidationError
from jobpulse.listing import JobFilter
from jobpulse.tokens.rules import NOTHING, TTL_MAX_S, Scope, expiry, is_token
from tests.unit.test_domain import make_job

RED_AGENT = Scope(job_type="agent", metadata={"team": "red"})


@pytest.mark.parametrize(
    ("scope", "fields", "held"),
    [
        (Scope(job_id="job-1"), {}, True),
        (Scope(job_id="job-2"), {}, False),
        (RED_AGENT, {"job_type": "agent", "metadata": {"team": "red", "n": 1}}, True),
        (RED_AGENT, {"job_type": "agent", "metadata": {"team": "blue"}}, False),
        (RED_AGENT, {"job_type": "agent", "metadata": {}}, False),
        (RED_AGENT, {"job_type": "cron", "metadata": {"team": "red"}}, False),
        (Scope(metadata={"team": "red"}), {"job_type": "cron", "metadata": {"team": "red"}}, True),
        (Scope(job_type="agent"), {"job_type": "agent"}, True),
    ],
)
def test_a_scope_holds_the_jobs_it_names(scope: Scope, fields: dict[str, Any], held: bool) -> None:
    assert scope.matches(make_job(**fields)) is held


@pytest.mark.parametrize(
    ("query", "narrowed"),
    [
        (JobFilter(), JobFilter(job_type="agent", metadata={"team": "red"})),
        (
            JobFilter(statuses=None, active=True, metadata={"user": "u"}),
            JobFilter(active=True, job_type="agent", metadata={"user": "u", "team": "red"}),
        ),
        (JobFilter(job_type="agent"), JobFilter(job_type="agent", metadata={"team": "red"})),
        (JobFilter(job_type="cron"), NOTHING),
        (JobFilter(metadata={"team": "blue"}), NOTHING),
        (
            JobFilter(job_id="job-9"),
            JobFilter(job_id="job-9", job_type="agent", metadata={"team": "red"}),
        ),
    ],
)
def test_a_scope_narrows_a_streams_filters(query: JobFilter, narrowed: JobFilter) -> None:
    assert RED_AGENT.narrow(query) == narrowed


def test_a_job_scope_narrows_to_its_job() -> None:
    scope = Scope(job_id="job-1")
    assert scope.narrow(JobFilter(job_type="agent")) == JobFilter(job_id="job-1", job_type="agent")
    assert scope.narrow(JobFilter(job_id="job-2")) is NOTHING
    assert not NOTHING.matches(make_job())


@pytest.mark.parametrize("scope", [Scope(job_id="job-1"), RED_AGENT, Scope(metadata={"a": "b"})])
def test_a_scope_survives_its_json(scope: Scope) -> None:
    assert Scope.from_document(scope.to_document()) == scope


def test_the_json_of_a_scope() -> None:
    assert Scope(job_id="job-1").to_document() == {"job_id": "job-1"}
    assert RED_AGENT.to_document() == {"job_type": "agent", "metadata": {"team": "red"}}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"job_id": "job-1", "job_type": "agent"},
        {"job_id": "job-1", "metadata": {"a": "b"}},
        {"job_id": ""},
        {"job_type": "x" * 256},
        {"job_type": "a\x00b"},
        {"metadata": {"a": 1}},
        {"metadata": {"a b": "c"}},
        {"metadata": {"a": "\ud800"}},
        {"metadata": {f"k{n}": "v" for n in range(17)}},
    ],
)
def test_a_bad_scope_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Scope(**fields)


def test_lifetimes() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry(now, 900) == now + timedelta(seconds=900)
    assert expiry(now, TTL_MAX_S) == now + timedelta(days=1)
    for wrong in (0, -1, TTL_MAX_S + 1, True):
        with pytest.raises(ValidationError):
            expiry(now, wrong)


def test_a_token_is_told_from_a_key() -> None:
    assert is_token("jpt_abc")
    assert not is_token("jp_abc")
    assert not is_token("")
