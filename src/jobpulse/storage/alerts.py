"""Alert rules and their episodes in SQL: the statements, and the mixin of SqlJobStore that
runs them. A claim moves a due rule's next evaluation a period on in the transaction that
selects it (FOR UPDATE SKIP LOCKED on PostgreSQL, the single writer on SQLite), so replicas
evaluate each rule once a period; an episode opens and closes by compare-and-set on the
rule's `firing_alert_id`, so each is told once whatever evaluates it.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from jobpulse.alerts.rules import Alert, AlertRule, Evaluation, Metric
from jobpulse.errors import NotFoundError, ValidationError
from jobpulse.storage.engine import Database
from jobpulse.storage.feature_tables import alert_rules, alerts
from jobpulse.storage.outbox import insert_messages

_RULE_FIELDS = tuple(field.name for field in fields(AlertRule))
_ALERT_FIELDS = tuple(field.name for field in fields(Alert))


def _rule(row: Any) -> AlertRule:
    values = {name: getattr(row, name) for name in _RULE_FIELDS}
    return AlertRule(**(values | {"metric": Metric(row.metric)}))


def _alert(row: Any) -> Alert:
    values = {name: getattr(row, name) for name in _ALERT_FIELDS}
    return Alert(**(values | {"metric": Metric(row.metric), "jobs": int(row.jobs)}))


def insert_rule(connection: Connection, rule: AlertRule, rules_max: int) -> AlertRule:
    """Store `rule`, due at its creation (see AlertStore.insert_alert_rule)."""
    kept = connection.execute(
        select(func.count()).where(alert_rules.c.organization_id == rule.organization_id)
    ).scalar_one()
    if kept >= rules_max:
        raise ValidationError(
            f"an organization keeps at most {rules_max} alert rules: delete one first"
        )
    values = asdict(rule) | {"metric": rule.metric.value, "next_evaluation_at": rule.created_at}
    connection.execute(insert(alert_rules).values(**values))
    return rule


def list_rules(connection: Connection, organization_id: str) -> list[AlertRule]:
    rows = connection.execute(
        select(alert_rules)
        .where(alert_rules.c.organization_id == organization_id)
        .order_by(alert_rules.c.created_at, alert_rules.c.id)
    )
    return [_rule(row) for row in rows]


def get_rule(connection: Connection, organization_id: str, rule_id: str) -> AlertRule:
    row = connection.execute(
        select(alert_rules).where(
            alert_rules.c.organization_id == organization_id, alert_rules.c.id == rule_id
        )
    ).first()
    if row is None:
        raise NotFoundError(f"alert rule {rule_id} not found")
    return _rule(row)


def delete_rule(
    connection: Connection, organization_id: str, rule_id: str, closing: Evaluation | None
) -> None:
    get_rule(connection, organization_id, rule_id)  # NotFoundError before anything is written
    if closing is not None:
        record(connection, closing)
    connection.execute(delete(alert_rules).where(alert_rules.c.id == rule_id))


def claim(connection: Connection, now: datetime, next_at: datetime, limit: int) -> list[AlertRule]:
    """Rules due by `now`, the longest due first, made due next at `next_at`."""
    rows = connection.execute(
        select(alert_rules)
        .where(alert_rules.c.next_evaluation_at <= now)
        .order_by(alert_rules.c.next_evaluation_at, alert_rules.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        connection.execute(
            update(alert_rules)
            .where(alert_rules.c.id.in_([row.id for row in rows]))
            .values(next_evaluation_at=next_at)
        )
    return [_rule(row) for row in rows]


def record(connection: Connection, evaluation: Evaluation) -> bool:
    """Write `evaluation` (see AlertStore.record_alert_evaluation)."""
    rule = alert_rules.c.id == evaluation.rule_id
    changed = False
    values: dict[str, Any] = {"evaluated_at": evaluation.at, "last_value": evaluation.value}
    if evaluation.opened is not None:
        opened = connection.execute(
            update(alert_rules)
            .where(rule, alert_rules.c.firing_alert_id.is_(None))
            .values(firing_alert_id=evaluation.opened.id, **values)
        ).rowcount
        if opened:
            row = asdict(evaluation.opened) | {"metric": evaluation.opened.metric.value}
            connection.execute(insert(alerts).values(**row))
            changed = True
    elif evaluation.closed is not None:
        closed = connection.execute(
            update(alert_rules)
            .where(rule, alert_rules.c.firing_alert_id == evaluation.closed)
            .values(firing_alert_id=None, **values)
        ).rowcount
        if closed:
            connection.execute(
                update(alerts)
                .where(alerts.c.id == evaluation.closed, alerts.c.resolved_at.is_(None))
                .values(resolved_at=evaluation.at, resolved_value=evaluation.value)
            )
            changed = True
    if changed:
        if evaluation.message is not None:
            insert_messages(connection, [evaluation.message])
    else:
        connection.execute(update(alert_rules).where(rule).values(**values))
    return changed


def list_alerts(connection: Connection, organization_id: str, limit: int) -> list[Alert]:
    org = alerts.c.organization_id == organization_id
    newest = (alerts.c.fired_at.desc(), alerts.c.id.desc())
    firing = connection.execute(
        select(alerts).where(org, alerts.c.resolved_at.is_(None)).order_by(*newest)
    ).all()
    ended = connection.execute(
        select(alerts).where(org, alerts.c.resolved_at.is_not(None)).order_by(*newest).limit(limit)
    ).all()
    return [_alert(row) for row in (*firing, *ended)]


class SqlAlertStore:
    """The AlertStore on SQL (a mixin of SqlJobStore, on its `database`)."""

    database: Database

    async def insert_alert_rule(self, rule: AlertRule, rules_max: int) -> AlertRule:
        return await self.database.write(insert_rule, rule, rules_max)

    async def list_alert_rules(self, organization_id: str) -> list[AlertRule]:
        return await self.database.read(list_rules, organization_id)

    async def get_alert_rule(self, organization_id: str, rule_id: str) -> AlertRule:
        return await self.database.read(get_rule, organization_id, rule_id)

    async def delete_alert_rule(
        self, organization_id: str, rule_id: str, closing: Evaluation | None
    ) -> None:
        await self.database.write(delete_rule, organization_id, rule_id, closing)

    async def claim_alert_rules(
        self, now: datetime, next_at: datetime, limit: int
    ) -> list[AlertRule]:
        return await self.database.write_upkeep(claim, now, next_at, limit)

    async def record_alert_evaluation(self, evaluation: Evaluation) -> bool:
        return await self.database.write(record, evaluation)

    async def list_alerts(self, organization_id: str, limit: int) -> list[Alert]:
        return await self.database.read(list_alerts, organization_id, limit)
