"""Delivery attempts kept: each attempt's row, its message moved on and shown on its job,
written by a worker in batches (alone, or in the transaction of its next claim, see
storage/outbox.py for the claims).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from jobpulse.domain import OutboxMessage
from jobpulse.storage import prepared
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.outbox import PENDING, Attempt, Claimed, Shares, claim_due, insert_messages
from jobpulse.storage.recent import recent_jobs
from jobpulse.storage.tables import callback_attempts, jobs, outbox

#: One attempt to record: the message, what the attempt did, and an alert it leads to.
Outcome = tuple[Claimed, Attempt, OutboxMessage | None]

_INSERT_ATTEMPT = insert(callback_attempts)
#: The SET columns are the parameters' other keys (see prepared.write_many).
_MOVE_MESSAGE = update(outbox).where(
    outbox.c.id == bindparam("b_id"), outbox.c.locked_until == bindparam("b_lease")
)
_SHOW_ON_JOB = update(jobs).where(jobs.c.id == bindparam("b_id"))


def record_attempts(connection: Connection, outcomes: Sequence[Outcome]) -> None:
    """Keep each attempt, move its message on, and show the last attempt on its job (its
    `callback_*` columns, for a job's own callback): a few statements for the whole batch,
    whatever its size, run straight on the driver (see `Dialect.record_attempts`).

    A message is moved on only while it is still under the lease its attempt was made in:
    one made due again meanwhile (a resend asked for, or its lease ran out and another
    worker claimed it) is left as that made it, so the resend is not undone.
    """
    if not outcomes:
        return
    rows = [
        {
            "outbox_id": message.id,
            "webhook_id": message.webhook_id,
            "job_id": message.job_id,
            "event_type": message.event_type,
            "attempt": attempt.attempt,
            "attempted_at": attempt.attempted_at,
            "status_code": attempt.status_code,
            "error": attempt.error,
            "duration_ms": attempt.duration_ms,
            "state": attempt.state,
            "next_attempt_at": attempt.next_attempt_at,
            "lease": message.locked_until,
        }
        for message, attempt, _follow_up in outcomes
    ]
    dialect_of(connection).record_attempts(connection, rows)
    shown = [
        message.job_id
        for message, _attempt, _follow_up in outcomes
        if message.job_id is not None and shows_on_job(message.job_id, message.event_type)
    ]
    recent_jobs(connection).forget(shown)  # their next change reads them anew
    follow_ups = [follow_up for _m, _a, follow_up in outcomes if follow_up is not None]
    if follow_ups:
        insert_messages(connection, follow_ups)


@dataclass(frozen=True, slots=True)
class Recording:
    """A batch of attempts for the writer to record (see `record_attempts`): alone in its
    writer batch, where that is one statement, it commits without BEGIN and COMMIT.
    """

    outcomes: Sequence[Outcome]

    def __call__(self, connection: Connection) -> None:
        record_attempts(connection, self.outcomes)

    def is_one_statement_alone(self, dialect: Dialect) -> bool:
        """Whether recording these is one statement: no alert follows any of them."""
        follow_ups = any(follow_up is not None for _m, _a, follow_up in self.outcomes)
        return dialect.records_in_one_statement and not follow_ups


def record_and_claim(
    connection: Connection,
    recorded: Sequence[Outcome],
    now: datetime,
    lease_until: datetime,
    limit: int,
    shares: Shares | None = None,
) -> list[Claimed]:
    """`record_attempts` of `recorded`, then `claim_due`, in the caller's transaction: a
    worker's record of the attempts that ended since its last claim costs no commit of its own.
    """
    record_attempts(connection, recorded)
    return claim_due(connection, now, lease_until, limit, shares)


def record_each(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """`record_attempts` as three batches of a statement a row (callback_attempts' columns
    and each message's `lease` in `rows`, in the order the attempts ended: the last of a
    message or job is what stays).
    """
    prepared.write_many(connection, _INSERT_ATTEMPT, rows)
    prepared.write_many(
        connection,
        _MOVE_MESSAGE,
        [
            {
                "b_id": row["outbox_id"],
                "b_lease": row["lease"],
                "state": PENDING if row["next_attempt_at"] is not None else row["state"],
                "attempts": row["attempt"],
                "next_attempt_at": row["next_attempt_at"] or row["attempted_at"],
                "locked_until": None,
                "delivered_at": row["attempted_at"] if row["state"] == "delivered" else None,
            }
            for row in rows
        ],
    )
    shown = [
        {
            "b_id": row["job_id"],
            "callback_sent_at": row["attempted_at"],
            "callback_status_code": row["status_code"],
            "callback_error": row["error"],
        }
        for row in rows
        if shows_on_job(row["job_id"], row["event_type"])
    ]
    if shown:
        prepared.write_many(connection, _SHOW_ON_JOB, shown)


def shows_on_job(job_id: str | None, event_type: str) -> bool:
    """Whether an attempt of this message is shown on its job: a job's own callback."""
    return job_id is not None and event_type.startswith("job.")


def list_attempts(connection: Connection, job_id: str) -> list[dict[str, Any]]:
    """Every delivery attempt for the job's webhooks, oldest first."""
    rows = connection.execute(
        select(callback_attempts)
        .where(callback_attempts.c.job_id == job_id)
        .order_by(callback_attempts.c.id)
    )
    return [dict(row._mapping) for row in rows]
