"""Alert rules as an organization's admins keep them (`/v1/alert-rules`), and the alerts
they raised (`/v1/alerts`, the dashboard's overview): through a manager's store.
"""

from __future__ import annotations

from jobpulse.alerts.rules import (
    RULES_MAX,
    Alert,
    AlertRule,
    Metric,
    Reading,
    check_rule,
    new_rule_id,
    resolution,
)
from jobpulse.documents import text_problem
from jobpulse.domain import Actor
from jobpulse.errors import ForbiddenError, NotFoundError
from jobpulse.jobs.manager import JobManager

#: Resolved alerts `GET /v1/alerts` shows besides the firing ones, at most.
RECENT_MAX = 50
#: The longest rule id (`rule-<uuid>`: 41 characters).
RULE_ID_MAX = 64


class AlertRules:
    """Creates, lists and deletes an organization's rules; lists its alerts."""

    def __init__(self, jobs: JobManager, webhook: str | None = None) -> None:
        self._jobs = jobs
        #: Where `alert.resolved` goes when a firing rule is deleted.
        self._webhook = webhook

    async def create(
        self,
        actor: Actor,
        *,
        name: str,
        metric: Metric,
        window_s: float,
        above: float,
        min_jobs: int,
        job_type: str | None = None,
        model: str | None = None,
        user_id: str | None = None,
    ) -> AlertRule:
        """A new rule of the actor's organization, evaluated from the next period on."""
        _admin_only(actor)
        texts = {"name": name, "job_type": job_type, "model": model, "user_id": user_id}
        check_rule(metric, window_s, above, min_jobs, texts)
        rule = AlertRule(
            id=new_rule_id(),
            organization_id=actor.organization_id,
            name=name,
            metric=metric,
            window_s=window_s,
            above=above,
            min_jobs=min_jobs,
            job_type=job_type,
            model=model,
            user_id=user_id,
            created_by=actor.user_id,
            created_at=self._jobs.now(),
        )
        return await self._jobs.store.insert_alert_rule(rule, RULES_MAX)

    async def list_rules(self, actor: Actor) -> list[AlertRule]:
        _admin_only(actor)
        return await self._jobs.store.list_alert_rules(actor.organization_id)

    async def get(self, actor: Actor, rule_id: str) -> AlertRule:
        _admin_only(actor)
        if len(rule_id) > RULE_ID_MAX or text_problem(rule_id) is not None:
            raise NotFoundError(f"alert rule {rule_id[:RULE_ID_MAX]!r} not found")
        return await self._jobs.store.get_alert_rule(actor.organization_id, rule_id)

    async def delete(self, actor: Actor, rule_id: str) -> None:
        """Delete the rule; a firing one resolves first (`alert.resolved`, reason `deleted`)."""
        rule = await self.get(actor, rule_id)
        closing = None
        if rule.is_firing:
            reading = Reading(rule.last_value, 0)
            now = self._jobs.now()
            closing = resolution(rule, reading, now, self._webhook, reason="rule deleted")
        await self._jobs.store.delete_alert_rule(actor.organization_id, rule_id, closing)
        if closing is not None and closing.message is not None:
            self._jobs.hooks.webhooks_queued()

    async def alerts(self, actor: Actor, limit: int = RECENT_MAX) -> list[Alert]:
        """The organization's firing alerts, then its recently resolved ones."""
        _admin_only(actor)
        return await self._jobs.store.list_alerts(actor.organization_id, limit)


def _admin_only(actor: Actor) -> None:
    if not actor.is_admin:
        raise ForbiddenError("alert rules and alerts are for the organization's admins")
