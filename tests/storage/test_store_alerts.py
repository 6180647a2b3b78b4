"""The store's alert operations, on SQLite and PostgreSQL, with a second store on the same
database as another replica: rules kept per organization, claims that hand each due rule to
one replica a period, episodes that open and close once whatever races.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from jobpulse.alerts.rules import AlertRule, Metric, Reading, evaluate, new_rule_id, resolution
from jobpulse.errors import NotFoundError, ValidationError
from jobpulse.storage.sql_store import SqlJobStore
from jobpulse.storage.store import JobStore
from jobpulse.storage.tables import outbox
from tests.storage.conftest import HOOK, T0, seconds

PERIOD = seconds(60)


def new_rule(organization_id: str = "org-a", **fields: object) -> AlertRule:
    values: dict[str, object] = {
        "id": new_rule_id(),
        "organization_id": organization_id,
        "name": "failing",
        "metric": Metric.FAILURE_RATE,
        "window_s": 600.0,
        "above": 0.5,
        "min_jobs": 1,
        "job_type": None,
        "model": None,
        "user_id": None,
        "created_by": "root",
        "created_at": T0,
    }
    return AlertRule(**(values | fields))  # type: ignore[arg-type]


async def messages(store: JobStore) -> list[str]:
    assert isinstance(store, SqlJobStore)
    rows = await store.database.read(
        lambda c: c.execute(outbox.select().order_by(outbox.c.id)).all()
    )
    return [row.event_type for row in rows]


async def test_insert_alert_rule_keeps_it_per_organization_up_to_a_bound(store: JobStore) -> None:
    first = await store.insert_alert_rule(new_rule(name="one"), 2)
    second = await store.insert_alert_rule(new_rule(name="two", created_at=T0 + PERIOD), 2)
    with pytest.raises(ValidationError, match="at most 2 alert rules"):
        await store.insert_alert_rule(new_rule(name="three"), 2)
    await store.insert_alert_rule(new_rule("org-b"), 2)
    assert await store.list_alert_rules("org-a") == [first, second]


async def test_list_alert_rules_of_an_organization_oldest_first(store: JobStore) -> None:
    assert await store.list_alert_rules("org-a") == []
    later = await store.insert_alert_rule(new_rule(created_at=T0 + PERIOD, job_type="agent"), 5)
    earlier = await store.insert_alert_rule(new_rule(user_id="alice", window_s=1.5), 5)
    await store.insert_alert_rule(new_rule("org-b"), 5)
    assert await store.list_alert_rules("org-a") == [earlier, later]


async def test_get_alert_rule_of_its_organization_only(store: JobStore) -> None:
    rule = await store.insert_alert_rule(new_rule(), 5)
    assert await store.get_alert_rule("org-a", rule.id) == rule
    with pytest.raises(NotFoundError):
        await store.get_alert_rule("org-b", rule.id)
    with pytest.raises(NotFoundError):
        await store.get_alert_rule("org-a", new_rule_id())


async def test_delete_alert_rule_closes_its_episode_and_keeps_it(store: JobStore) -> None:
    rule = await store.insert_alert_rule(new_rule(), 5)
    assert await store.record_alert_evaluation(evaluate(rule, Reading(1.0, 3), T0, HOOK))
    firing = await store.get_alert_rule("org-a", rule.id)
    with pytest.raises(NotFoundError):
        await store.delete_alert_rule("org-b", rule.id, None)
    closing = resolution(firing, Reading(1.0, 0), T0 + PERIOD, HOOK, reason="rule deleted")
    await store.delete_alert_rule("org-a", rule.id, closing)
    assert await store.list_alert_rules("org-a") == []
    [alert] = await store.list_alerts("org-a", 10)
    assert (alert.rule_id, alert.resolved_at) == (rule.id, T0 + PERIOD)
    assert await messages(store) == ["alert.firing", "alert.resolved"]
    with pytest.raises(NotFoundError):
        await store.delete_alert_rule("org-a", rule.id, closing)
    assert await messages(store) == ["alert.firing", "alert.resolved"]  # nothing written


async def test_claim_alert_rules_hands_each_due_rule_to_one_replica_a_period(
    store: JobStore, other: JobStore
) -> None:
    made = [await store.insert_alert_rule(new_rule(name=f"r{n}"), 100) for n in range(30)]
    now = T0
    for _ in range(3):
        claims = await asyncio.gather(
            *(replica.claim_alert_rules(now, now + PERIOD, 7) for replica in [store, other] * 2)
        )
        claimed = [rule.id for claim in claims for rule in claim]
        assert len(claimed) == len(set(claimed))
        rest = await other.claim_alert_rules(now, now + PERIOD, 100)
        assert sorted(claimed + [rule.id for rule in rest]) == sorted(rule.id for rule in made)
        assert await store.claim_alert_rules(now + PERIOD / 2, now + PERIOD, 100) == []
        now += PERIOD


async def test_record_alert_evaluation_opens_and_closes_an_episode_once(
    store: JobStore, other: JobStore
) -> None:
    rule = await store.insert_alert_rule(new_rule(), 5)
    replicas = [store, other] * 3
    opening = [evaluate(rule, Reading(1.0, 5), T0, HOOK) for _ in replicas]
    won = await asyncio.gather(
        *(r.record_alert_evaluation(e) for r, e in zip(replicas, opening, strict=True))
    )
    assert sorted(won) == [False] * 5 + [True]
    firing = await store.get_alert_rule("org-a", rule.id)
    [alert] = await store.list_alerts("org-a", 10)
    assert firing.firing_alert_id == alert.id
    assert (firing.evaluated_at, firing.last_value) == (T0, 1.0)
    # A stale view of the rule (not firing) opens nothing more; a reading still over the
    # line writes only the value.
    stale = evaluate(replace(firing, firing_alert_id=None), Reading(0.9, 5), T0 + PERIOD, HOOK)
    assert not await other.record_alert_evaluation(stale)
    assert not await other.record_alert_evaluation(evaluate(firing, Reading(0.8, 5), T0, HOOK))
    assert (await store.get_alert_rule("org-a", rule.id)).last_value == 0.8

    closing = [evaluate(firing, Reading(0.1, 5), T0 + PERIOD, HOOK) for _ in replicas]
    won = await asyncio.gather(
        *(r.record_alert_evaluation(e) for r, e in zip(replicas, closing, strict=True))
    )
    assert sorted(won) == [False] * 5 + [True]
    [alert] = await store.list_alerts("org-a", 10)
    assert (alert.resolved_at, alert.resolved_value) == (T0 + PERIOD, 0.1)
    assert not (await store.get_alert_rule("org-a", rule.id)).is_firing
    assert await messages(store) == ["alert.firing", "alert.resolved"]


async def test_list_alerts_firing_first_then_the_most_recent(store: JobStore) -> None:
    rules = [await store.insert_alert_rule(new_rule(name=f"r{n}"), 10) for n in range(4)]
    for number, rule in enumerate(rules):
        at = T0 + number * PERIOD
        await store.record_alert_evaluation(evaluate(rule, Reading(1.0, 3), at, None))
    for rule in rules[:3]:
        firing = await store.get_alert_rule("org-a", rule.id)
        await store.record_alert_evaluation(evaluate(firing, Reading(0.0, 3), T0, None))
    found = await store.list_alerts("org-a", 2)
    assert [alert.rule_id for alert in found] == [rules[3].id, rules[2].id, rules[1].id]
    assert [alert.resolved_at is None for alert in found] == [True, False, False]
    assert await store.list_alerts("org-b", 10) == []
    assert await messages(store) == []  # no URL: recorded, nothing sent
