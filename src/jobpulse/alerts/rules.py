"""Alert rules as data plus pure functions: what a rule watches, what a window's figures
read as for it, whether it fires or resolves, and the `alert.firing` / `alert.resolved`
messages it sends. Storage keeps the rules and their episodes; alerts/evaluator.py runs them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from jobpulse.documents import text_problem
from jobpulse.domain import TERMINAL, JobStatus, OutboxMessage
from jobpulse.errors import ValidationError
from jobpulse.stats.windows import Stats
from jobpulse.usage.figures import UsageFigures
from jobpulse.usage.rules import TOKEN_KINDS, to_usd
from jobpulse.webhooks import payload

#: The event types of an alert's messages.
ALERT_FIRING = payload.ALERT_FIRING
ALERT_RESOLVED = payload.ALERT_RESOLVED
#: Who an evaluation's reads are made as (an admin of the rule's organization).
EVALUATOR = "jobpulse:alerts"
#: The shortest and the longest rolling window (31 days: the longest /v1/stats reads by
#: the hour).
WINDOW_MIN_S = 1.0
WINDOW_MAX_S = 31 * 24 * 3600.0
#: Jobs a window must hold before a rate or a p99 can fire, unless the rule says otherwise.
MIN_JOBS_DEFAULT = 10
#: The most rules one organization keeps (README: "What one client can hold").
RULES_MAX = 100
NAME_MAX = 255


class Metric(StrEnum):
    """What a rule watches, over its window of jobs created (as /v1/stats counts them)."""

    #: Failed jobs ÷ ended jobs, 0 to 1.
    FAILURE_RATE = "failure_rate"
    #: Jobs flagged stuck now (a count; not limited to the window).
    STUCK_JOBS = "stuck_jobs"
    #: The 99th percentile of time to first token, in seconds.
    TTFT_P99_S = "ttft_p99_s"
    #: The 99th percentile of duration, in seconds.
    DURATION_P99_S = "duration_p99_s"
    #: Tokens of the LLM calls recorded in the window (input, output, cache read and write).
    TOKENS = "tokens"
    #: The known cost in US dollars of the LLM calls recorded in the window.
    COST_USD = "cost_usd"


#: Metrics read from the LLM usage figures (the calls recorded in the window).
FROM_USAGE = frozenset({Metric.TOKENS, Metric.COST_USD})
#: Metrics that are rates or quantiles of the window's jobs: `min_jobs` holds them back.
COUNTED = frozenset({Metric.FAILURE_RATE, Metric.TTFT_P99_S, Metric.DURATION_P99_S})


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A rule of an organization, with where its evaluation left it."""

    id: str
    organization_id: str
    name: str
    metric: Metric
    window_s: float
    above: float
    min_jobs: int
    job_type: str | None
    model: str | None
    user_id: str | None
    created_by: str
    created_at: datetime
    #: The open episode while the rule fires (None: it does not).
    firing_alert_id: str | None = None
    evaluated_at: datetime | None = None
    #: The value of the last evaluation (None: no jobs to tell from).
    last_value: float | None = None

    @property
    def is_firing(self) -> bool:
        return self.firing_alert_id is not None


@dataclass(frozen=True, slots=True)
class Alert:
    """One episode of a rule firing: from `fired_at` until `resolved_at` (None: firing)."""

    id: str
    rule_id: str
    organization_id: str
    rule_name: str
    metric: Metric
    above: float
    window_s: float
    value: float
    jobs: int
    fired_at: datetime
    resolved_at: datetime | None = None
    resolved_value: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A rule's metric over its window: the value (None without jobs to tell from) and how
    many jobs it is of.
    """

    value: float | None
    jobs: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation writes: the rule's last value, and an episode opened (`opened`,
    if the rule still does not fire) or closed (`closed`, if it is still the open one), with
    the message that tells of it.
    """

    rule_id: str
    at: datetime
    value: float | None
    opened: Alert | None = None
    closed: str | None = None
    message: OutboxMessage | None = None


def new_rule_id() -> str:
    return f"rule-{uuid.uuid4()}"


def check_rule(
    metric: Metric,
    window_s: float,
    above: float,
    min_jobs: int,
    texts: dict[str, str | None],
) -> None:
    """ValidationError for a rule that cannot be evaluated or whose `texts` (name, job type,
    model, user) cannot be stored, saying why.
    """
    for name, text in texts.items():
        if text is not None and (problem := text_problem(text)) is not None:
            raise ValidationError(f"{name} {problem}", field=name)
    if not WINDOW_MIN_S <= window_s <= WINDOW_MAX_S:
        raise ValidationError(
            f"window_s must be from {WINDOW_MIN_S:g} to {WINDOW_MAX_S:g} seconds (31 days)",
            field="window_s",
        )
    if metric == Metric.FAILURE_RATE and not 0 <= above < 1:
        raise ValidationError(
            "a failure_rate rule fires above a share from 0 to 1 (0.05: 5%)", field="above"
        )
    if above < 0:
        raise ValidationError("above must not be negative", field="above")
    if min_jobs < 1:
        raise ValidationError("min_jobs must be at least 1", field="min_jobs")


def read(rule: AlertRule, figures: Stats | UsageFigures) -> Reading:
    """The rule's metric in the figures of its window: its jobs' (Stats), or for a metric
    FROM_USAGE its LLM calls' (UsageFigures).
    """
    if rule.metric in FROM_USAGE:
        assert isinstance(figures, UsageFigures)
        usage = figures
        calls = usage.total["calls"]
        if rule.metric == Metric.TOKENS:
            return Reading(float(sum(usage.total[kind] for kind in TOKEN_KINDS)), calls)
        return Reading(to_usd(usage.total["cost_pusd"]), calls)
    assert isinstance(figures, Stats)
    stats = figures
    if rule.metric == Metric.FAILURE_RATE:
        ended = sum(number for status, number in stats.by_status.items() if status in TERMINAL)
        return Reading(stats.rate(JobStatus.FAILED), ended)
    if rule.metric == Metric.STUCK_JOBS:
        return Reading(float(stats.stuck), stats.stuck)
    if rule.metric == Metric.TTFT_P99_S:
        return Reading(stats.ttft.quantile(0.99), stats.ttft.count)
    return Reading(stats.duration.quantile(0.99), stats.duration.count)


def is_breached(rule: AlertRule, reading: Reading) -> bool:
    """Whether the reading is over the rule's line, on enough jobs to tell."""
    if reading.value is None or reading.value <= rule.above:
        return False
    return rule.metric not in COUNTED or reading.jobs >= rule.min_jobs


def evaluate(rule: AlertRule, reading: Reading, now: datetime, url: str | None) -> Evaluation:
    """What the rule's evaluation at `now` writes: a new episode when it starts to be
    breached, the end of its episode when it stops, and a message to `url` (given one) of
    either; only the value otherwise.
    """
    breached = is_breached(rule, reading)
    if breached and rule.firing_alert_id is None:
        assert reading.value is not None
        alert = Alert(
            id=f"alert-{uuid.uuid4()}",
            rule_id=rule.id,
            organization_id=rule.organization_id,
            rule_name=rule.name,
            metric=rule.metric,
            above=rule.above,
            window_s=rule.window_s,
            value=reading.value,
            jobs=reading.jobs,
            fired_at=now,
        )
        message = None if url is None else firing_message(url, rule, alert)
        return Evaluation(rule.id, now, reading.value, opened=alert, message=message)
    if not breached and rule.firing_alert_id is not None:
        return resolution(rule, reading, now, url)
    return Evaluation(rule.id, now, reading.value)


def resolution(
    rule: AlertRule, reading: Reading, now: datetime, url: str | None, reason: str | None = None
) -> Evaluation:
    """The end of the rule's open episode at `now` (the rule no longer breached, or deleted:
    `reason`), and its message to `url`.
    """
    assert rule.firing_alert_id is not None
    message = None
    if url is not None:
        data = _data(rule, rule.firing_alert_id, reading.value, reading.jobs)
        data |= {"resolved_at": payload.timestamp(now), "reason": reason}
        message = payload.alert(url, ALERT_RESOLVED, data, now)
    return Evaluation(rule.id, now, reading.value, closed=rule.firing_alert_id, message=message)


def firing_message(url: str, rule: AlertRule, alert: Alert) -> OutboxMessage:
    """The `alert.firing` message of a new episode."""
    data = _data(rule, alert.id, alert.value, alert.jobs)
    data["fired_at"] = payload.timestamp(alert.fired_at)
    return payload.alert(url, ALERT_FIRING, data, alert.fired_at)


def _data(rule: AlertRule, alert_id: str, value: float | None, jobs: int) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "rule_id": rule.id,
        "organization_id": rule.organization_id,
        "name": rule.name,
        "metric": rule.metric.value,
        "above": rule.above,
        "window_s": rule.window_s,
        "value": value,
        "jobs": jobs,
        "job_type": rule.job_type,
        "model": rule.model,
        "user_id": rule.user_id,
    }
