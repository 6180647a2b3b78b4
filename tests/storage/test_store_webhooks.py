"""Conformance: steps and the webhook outbox (claimed under a lease, every attempt kept)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from jobpulse.errors import NotFoundError
from jobpulse.storage.attempts import Recording
from jobpulse.storage.claims import Shares
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.outbox import Attempt, Claimed
from jobpulse.storage.store import JobStore
from jobpulse.storage.tables import outbox as outbox_table
from jobpulse.webhooks import payload
from tests.sql import database_of
from tests.storage.conftest import (
    ADMIN,
    ALICE,
    BOB,
    EVE,
    HOOK,
    T0,
    created,
    ended_with_callback,
    new_job,
    seconds,
)

LEASE = seconds(30)


def attempt(message: Claimed, at: datetime, code: int | None, retry_at: datetime | None) -> Attempt:
    state = "delivered" if code == 200 else ("retrying" if retry_at else "failed")
    return Attempt(message.attempts + 1, at, code, None, 12.5, state, retry_at)


async def test_record_step_once_per_step_id(store: JobStore) -> None:
    job = await created(store)
    step = {"step_id": "s-1", "status": "success", "metadata": {"n": 1}, "created_at": T0}
    message = payload.step(HOOK, job.id, "s-1", "success", {"n": 1}, T0)
    first = await store.record_step(ALICE, job.id, step, message)
    assert first == step | {"job_id": job.id}
    again = {"step_id": "s-1", "status": "failed", "metadata": {}, "created_at": T0 + seconds(1)}
    repeat = payload.step(HOOK, job.id, "s-1", "failed", {}, T0 + seconds(1))
    assert await store.record_step(ALICE, job.id, again, repeat) == first
    claimed = await store.claim_outbox(T0 + seconds(2), T0 + LEASE, 10, None)
    assert [(m.webhook_id, m.payload["status"]) for m in claimed] == [
        (message.webhook_id, "success")
    ]
    with pytest.raises(NotFoundError):
        await store.record_step(BOB, job.id, step | {"step_id": "s-2"}, None)


async def test_list_steps_oldest_first(store: JobStore) -> None:
    job = await created(store)
    for i, status in enumerate(("success", "failed", "cancelled")):
        step = {"step_id": f"s-{i}", "status": status, "metadata": {}, "created_at": T0}
        await store.record_step(ALICE, job.id, step, None)
    steps = await store.list_steps(ALICE, job.id)
    assert [(s["step_id"], s["status"]) for s in steps] == [
        ("s-0", "success"),
        ("s-1", "failed"),
        ("s-2", "cancelled"),
    ]
    assert await store.list_steps(ADMIN, job.id) == steps
    with pytest.raises(NotFoundError):
        await store.list_steps(EVE, job.id)


async def test_claim_outbox_holds_a_message_until_its_lease_passes(store: JobStore) -> None:
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [held] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert (held.job_id, held.event_type, held.url) == (job.id, "job.failed", HOOK)
    assert (held.payload["job_id"], held.attempts, held.organization_id) == (job.id, 0, "org-a")
    assert await store.claim_outbox(now, now + LEASE, 10, None) == []
    assert await store.claim_outbox(now + LEASE - seconds(1), now + 2 * LEASE, 10, None) == []
    [again] = await store.claim_outbox(now + LEASE + seconds(1), now + 2 * LEASE, 10, None)
    assert again.webhook_id == held.webhook_id  # a worker that died: the message is due again


async def test_claim_outbox_takes_the_oldest_within_each_share(store: JobStore) -> None:
    first = await ended_with_callback(store)
    second = await ended_with_callback(store)
    other = await ended_with_callback(store, url="https://other.example.com/x")
    now = T0 + seconds(2)
    [oldest] = await store.claim_outbox(now, now + LEASE, 1, None)
    assert oldest.job_id == first.id
    full = Shares(org_max=10, host_max=1, held_host={"hooks.example.com": 1})
    [elsewhere] = await store.claim_outbox(now, now + LEASE, 10, full)
    assert elsewhere.job_id == other.id  # its host holds its share: passed over
    [rest] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert rest.job_id == second.id


async def test_claim_outbox_reads_on_past_a_share_that_fills_within_the_claim(
    store: JobStore,
) -> None:
    first = await ended_with_callback(store)
    second = await ended_with_callback(store)
    third = await ended_with_callback(store)
    other = await ended_with_callback(store, url="https://other.example.com/x")
    now = T0 + seconds(2)
    shares = Shares(org_max=10, host_max=1)  # nothing held: the first host fills in the claim
    claimed = await store.claim_outbox(now, now + LEASE, 2, shares)
    assert [message.job_id for message in claimed] == [first.id, other.id]
    # What the claim passed over is due at once, to the next claim (here, of the oldest two
    # alone: no share can fill).
    roomy = Shares(org_max=10, host_max=10)
    claimed = await store.claim_outbox(now, now + LEASE, 2, roomy)
    assert [message.job_id for message in claimed] == [second.id, third.id]


async def test_a_claim_passes_over_what_would_overfill_an_organizations_share(
    store: JobStore,
) -> None:
    mine = [await ended_with_callback(store) for _ in range(3)]
    theirs = await ended_with_callback(store, actor=EVE)
    now = T0 + seconds(2)
    shares = Shares(org_max=2, host_max=10)  # nothing held: org-a fills within the claim
    claimed = await store.claim_outbox(now, now + LEASE, 3, shares)
    assert [(message.job_id, message.organization_id) for message in claimed] == [
        (mine[0].id, "org-a"),
        (mine[1].id, "org-a"),
        (theirs.id, "org-b"),
    ]
    [passed_over] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert passed_over.job_id == mine[2].id  # let go at once, not held until its lease ends


async def test_record_attempts_keeps_each_attempt_and_moves_the_message_on(
    store: JobStore,
) -> None:
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    retry_at = now + seconds(5)
    await store.record_attempts([(message, attempt(message, now, 503, retry_at), None)])
    shown = await store.get(ALICE, job.id)
    assert (shown.callback_sent_at, shown.callback_status_code) == (now, 503)
    assert await store.claim_outbox(retry_at - seconds(1), retry_at + LEASE, 10, None) == []
    [retry] = await store.claim_outbox(retry_at, retry_at + LEASE, 10, None)
    assert (retry.webhook_id, retry.attempts) == (message.webhook_id, 1)
    alert = payload.alert(HOOK + "/ops", payload.CALLBACK_EXHAUSTED, {"job": job.id}, retry_at)
    await store.record_attempts([(retry, attempt(retry, retry_at, 200, None), alert)])
    later = retry_at + seconds(3600)
    [follow_up] = await store.claim_outbox(later, later + LEASE, 10, None)
    assert (follow_up.webhook_id, follow_up.organization_id) == (alert.webhook_id, None)
    assert (await store.get(ALICE, job.id)).callback_status_code == 200


async def test_two_attempts_of_a_message_in_one_batch_leave_it_as_the_last_says(
    store: JobStore,
) -> None:
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    error = 'HTTP 502 \u2014 "bad gateway" from \u00fcber\\proxy'
    failed = Attempt(1, now, 502, error, 3.25, "retrying", now + seconds(5))
    delivered = Attempt(2, now + seconds(1), 200, None, 1.5, "delivered", None)
    await store.record_attempts([(message, failed, None), (message, delivered, None)])
    kept = await store.list_attempts(ALICE, job.id)
    assert [(a["attempt"], a["status_code"], a["error"], a["duration_ms"]) for a in kept] == [
        (1, 502, error, 3.25),
        (2, 200, None, 1.5),
    ]
    assert [(a["attempted_at"], a["next_attempt_at"]) for a in kept] == [
        (now, now + seconds(5)),
        (now + seconds(1), None),
    ]
    shown = await store.get(ALICE, job.id)
    assert (shown.callback_sent_at, shown.callback_status_code) == (now + seconds(1), 200)
    assert shown.callback_error is None
    assert await store.claim_outbox(now + seconds(3600), now + seconds(3700), 10, None) == []


async def test_list_attempts_oldest_first(store: JobStore) -> None:
    job = await ended_with_callback(store)
    assert await store.list_attempts(ALICE, job.id) == []
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    await store.record_attempts([(message, attempt(message, now, 500, now), None)])
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    await store.record_attempts([(message, attempt(message, now + seconds(1), 200, None), None)])
    attempts = await store.list_attempts(ALICE, job.id)
    assert [(a["attempt"], a["status_code"], a["state"]) for a in attempts] == [
        (1, 500, "retrying"),
        (2, 200, "delivered"),
    ]
    assert {a["webhook_id"] for a in attempts} == {message.webhook_id}
    with pytest.raises(NotFoundError):
        await store.list_attempts(BOB, job.id)


async def test_a_batch_of_attempts_alone_commits_as_one_statement_where_it_is_one(
    store: JobStore,
) -> None:
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    dialect = await database_of(store).read(dialect_of)
    alert = payload.alert(HOOK, payload.CALLBACK_EXHAUSTED, {}, now)
    failed = attempt(message, now, 500, None)
    plain, alerting = Recording([(message, failed, None)]), Recording([(message, failed, alert)])
    assert plain.is_one_statement_alone(dialect) == dialect.records_in_one_statement
    assert not alerting.is_one_statement_alone(dialect)  # the alert is a statement more
    await store.record_attempts([(message, failed, None)])
    [kept] = await store.list_attempts(ALICE, job.id)
    assert (kept["status_code"], kept["state"]) == (500, "failed")
    assert await store.claim_outbox(now + LEASE, now + 2 * LEASE, 10, None) == []


async def test_claim_outbox_records_the_attempts_it_is_given_first(store: JobStore) -> None:
    job = await ended_with_callback(store)
    second = await ended_with_callback(store)
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 1, None)
    retry_at = now + seconds(10)
    outcome = (message, attempt(message, now, 503, retry_at), None)
    [other] = await store.claim_outbox(now, now + LEASE, 10, None, [outcome])
    assert other.job_id == second.id
    [kept] = await store.list_attempts(ALICE, job.id)
    assert (kept["status_code"], kept["state"], kept["attempt"]) == (503, "retrying", 1)
    [again] = await store.claim_outbox(retry_at, retry_at + LEASE, 10, None)
    assert (again.webhook_id, again.attempts) == (message.webhook_id, 1)


async def test_requeue_callback_makes_it_due_again_with_its_webhook_id(store: JobStore) -> None:
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    await store.record_attempts([(message, attempt(message, now, 410, None), None)])
    later = now + seconds(60)
    assert await store.claim_outbox(later, later + LEASE, 10, None) == []
    assert await store.requeue_callback(ALICE, job.id, later) == message.webhook_id
    [again] = await store.claim_outbox(later, later + LEASE, 10, None)
    assert again.webhook_id == message.webhook_id
    with pytest.raises(NotFoundError):
        await store.requeue_callback(BOB, job.id, later)
    plain, _made = await store.create(new_job(), None)
    with pytest.raises(NotFoundError):  # a job without a callback has none to send again
        await store.requeue_callback(ALICE, plain.id, later)


async def test_an_attempt_recorded_after_a_resend_was_asked_does_not_undo_it(
    store: JobStore,
) -> None:
    """A resend asked while the attempt's record was not yet written (it waits for the next
    claim): the message stays due, and the record of the first attempt is still kept.
    """
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [message] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert await store.requeue_callback(ALICE, job.id, now) == message.webhook_id
    await store.record_attempts([(message, attempt(message, now, 200, None), None)])
    [again] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert again.webhook_id == message.webhook_id
    [kept] = await store.list_attempts(ALICE, job.id)
    assert (kept["status_code"], kept["state"]) == (200, "delivered")


async def test_an_attempt_recorded_after_its_lease_ran_out_leaves_the_new_claim_be(
    store: JobStore,
) -> None:
    """A worker that records after its lease ran out and another worker claimed the message
    does not move it on under that worker: if that one dies too, the message comes back.
    """
    await ended_with_callback(store)
    now = T0 + seconds(2)
    [slow] = await store.claim_outbox(now, now + LEASE, 10, None)
    later = now + LEASE + seconds(1)
    [taken] = await store.claim_outbox(later, later + LEASE, 10, None)
    await store.record_attempts([(slow, attempt(slow, later, 200, None), None)])
    assert await store.claim_outbox(later, later + LEASE, 10, None) == []  # still taken's
    latest = later + LEASE + seconds(1)
    [back] = await store.claim_outbox(latest, latest + LEASE, 10, None)
    assert back.webhook_id == taken.webhook_id == slow.webhook_id


async def test_a_claim_carries_the_body_made_when_the_message_was_written(
    store: JobStore,
) -> None:
    job = await ended_with_callback(store)
    now = T0 + seconds(2)
    [held] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert held.body is not None
    sent = json.loads(held.body)
    assert (sent["type"], sent["job_id"], sent["status"]) == ("job.failed", job.id, "failed")
    assert held.body == json.dumps(sent, separators=(",", ":"))  # compact, as it is POSTed
    assert held.payload == sent


async def test_a_message_written_before_bodies_were_kept_is_read_from_its_document(
    store: JobStore,
) -> None:
    job = await ended_with_callback(store)
    await database_of(store).write(
        lambda connection: connection.execute(outbox_table.update().values(body=None))
    )
    now = T0 + seconds(2)
    [held] = await store.claim_outbox(now, now + LEASE, 10, None)
    assert held.body is None
    assert (held.payload["job_id"], held.payload["type"]) == (job.id, "job.failed")
