"""The wire format of the alert routes (pydantic): a rule as created and as shown, an alert."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from jobpulse.alerts.rules import MIN_JOBS_DEFAULT, NAME_MAX, WINDOW_MAX_S, Alert, AlertRule, Metric


class AlertRuleCreate(BaseModel):
    """The body of POST /v1/alert-rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX)
    metric: Metric
    #: The rolling window, in seconds: the jobs created in the last `window_s`.
    window_s: float = Field(gt=0, le=WINDOW_MAX_S, allow_inf_nan=False)
    #: The rule fires while the metric is above this.
    above: float = Field(ge=0, allow_inf_nan=False)
    #: Jobs the window must hold before a rate or p99 can fire.
    min_jobs: int = Field(default=MIN_JOBS_DEFAULT, ge=1, le=1_000_000_000)
    job_type: str | None = Field(default=None, min_length=1, max_length=128)
    model: str | None = Field(default=None, min_length=1, max_length=255)
    user_id: str | None = Field(default=None, min_length=1, max_length=128)


class AlertRulePublic(BaseModel):
    """An alert rule, with where its evaluation stands."""

    id: str
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
    #: Whether the rule fires now, and the episode if so.
    firing: bool
    firing_alert_id: str | None
    evaluated_at: datetime | None
    last_value: float | None

    @classmethod
    def of(cls, rule: AlertRule) -> AlertRulePublic:
        return cls(
            id=rule.id,
            name=rule.name,
            metric=rule.metric,
            window_s=rule.window_s,
            above=rule.above,
            min_jobs=rule.min_jobs,
            job_type=rule.job_type,
            model=rule.model,
            user_id=rule.user_id,
            created_by=rule.created_by,
            created_at=rule.created_at,
            firing=rule.is_firing,
            firing_alert_id=rule.firing_alert_id,
            evaluated_at=rule.evaluated_at,
            last_value=rule.last_value,
        )


class AlertPublic(BaseModel):
    """One episode of a rule firing (`state` firing until it resolves)."""

    id: str
    rule_id: str
    name: str
    metric: Metric
    above: float
    window_s: float
    state: str
    value: float
    jobs: int
    fired_at: datetime
    resolved_at: datetime | None
    resolved_value: float | None

    @classmethod
    def of(cls, alert: Alert) -> AlertPublic:
        return cls(
            id=alert.id,
            rule_id=alert.rule_id,
            name=alert.rule_name,
            metric=alert.metric,
            above=alert.above,
            window_s=alert.window_s,
            state="firing" if alert.resolved_at is None else "resolved",
            value=alert.value,
            jobs=alert.jobs,
            fired_at=alert.fired_at,
            resolved_at=alert.resolved_at,
            resolved_value=alert.resolved_value,
        )
