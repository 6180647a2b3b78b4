"""The store's operations for alert rules and their episodes (see alerts/rules.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from jobpulse.alerts.rules import Alert, AlertRule, Evaluation


class AlertStore(Protocol):
    """Alert rules, per organization, and the episodes of their firing."""

    async def insert_alert_rule(self, rule: AlertRule, rules_max: int) -> AlertRule:
        """Store a new rule, due at once; ValidationError if its organization already keeps
        `rules_max`.
        """
        ...

    async def list_alert_rules(self, organization_id: str) -> list[AlertRule]:
        """The organization's rules, oldest first."""
        ...

    async def get_alert_rule(self, organization_id: str, rule_id: str) -> AlertRule:
        """The rule (NotFoundError if the organization has none of that id)."""
        ...

    async def delete_alert_rule(
        self, organization_id: str, rule_id: str, closing: Evaluation | None
    ) -> None:
        """Delete the rule, first writing `closing` (the end of its episode, if it is still
        open); NotFoundError if there is no such rule.
        """
        ...

    async def claim_alert_rules(
        self, now: datetime, next_at: datetime, limit: int
    ) -> list[AlertRule]:
        """Up to `limit` rules due by `now`, made due next at `next_at` in the same
        transaction (rules another replica is claiming are skipped).
        """
        ...

    async def record_alert_evaluation(self, evaluation: Evaluation) -> bool:
        """Write the evaluation: the rule's last value, and its episode opened only if the
        rule does not fire, or closed only if it is the open one, with its message (all in
        one transaction). Whether an episode was opened or closed.
        """
        ...

    async def list_alerts(self, organization_id: str, limit: int) -> list[Alert]:
        """The organization's firing episodes, then up to `limit` of the others, the most
        recent first.
        """
        ...
