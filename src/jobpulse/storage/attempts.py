"""Delivery attempts kept: each attempt's row, its message moved on and shown on its job,
written by a worker in batches (alone, or in the transaction of its next claim, see
storage/claims.py for the claims).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from jobpulse.domain import OutboxMessage
from jobpulse.storage.claims import Shares, claim_due
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.outbox import Attempt, AttemptRow, Claimed, insert_messages
from jobpulse.storage.recent import recent_jobs
from jobpulse.storage.tables import callback_attempts

#: One attempt to record: the message, what the attempt did, and an alert it leads to.
Outcome = tuple[Claimed, Attempt, OutboxMessage | None]


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
    rows: list[AttemptRow] = [
        (
            message.id,
            message.webhook_id,
            message.job_id,
            message.event_type,
            *attempt,
            message.locked_until,
        )
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
