"""The webhook outbox: messages written with the change that caused them, claimed by
delivery workers under a lease (storage/claims.py); every attempt is kept by
storage/attempts.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    insert,
    literal_column,
    null,
    select,
    update,
)

from jobpulse.domain import OutboxMessage
from jobpulse.errors import NotFoundError
from jobpulse.storage import prepared
from jobpulse.storage.tables import jobs, outbox

PENDING = "pending"
_INSERT_MESSAGE = insert(outbox)


class Claimed(NamedTuple):
    """A message a worker holds until `locked_until` (a tuple: a claim makes dozens of
    them in the writer, and a dataclass costs four times as much to make).
    """

    id: int
    webhook_id: str
    job_id: str | None
    event_type: str
    url: str
    #: The JSON text to POST, made when the message was written (see `encode_body`).
    body: str | None
    attempts: int
    trace_context: dict[str, str] | None
    #: The end of its lease: what its attempt's record is written under (see
    #: attempts.record_attempts).
    locked_until: datetime
    #: The organization of its job (None: an operator's alert or step event, or a job gone).
    organization_id: str | None = None
    #: The stored document, read only when there is no body.
    document: Any = None

    @property
    def payload(self) -> Any:
        """The message's document."""
        return self.document if self.body is None else json.loads(self.body)


class Attempt(NamedTuple):
    """What one delivery attempt did, and what it leaves the message in."""

    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    state: str
    next_attempt_at: datetime | None


#: What recording one attempt writes, a tuple in this order (see attempts.record_attempts):
#: callback_attempts' columns but its id, then the lease its message was claimed under.
RECORDED_FIELDS = ("outbox_id", "webhook_id", "job_id", "event_type", *Attempt._fields, "lease")
#: The columns of callback_attempts an attempt's record fills (all but its id).
ATTEMPT_COLUMNS = RECORDED_FIELDS[:-1]
AttemptRow = tuple[Any, ...]


def moved_on(last: Any) -> dict[str, Any]:
    """The outbox columns the last attempt of a message leaves (`last`: a subquery with
    RECORDED_FIELDS): due again at its next attempt, else delivered or failed for good.
    """
    return {
        "state": case(
            (last.c.next_attempt_at.is_not(None), literal_column(f"'{PENDING}'")),
            else_=last.c.state,
        ),
        "attempts": last.c.attempt,
        "next_attempt_at": func.coalesce(last.c.next_attempt_at, last.c.attempted_at),
        "locked_until": null(),
        "delivered_at": case((last.c.state == literal_column("'delivered'"), last.c.attempted_at)),
    }


def is_job_callback(job_id: Any, event_type: Any) -> ColumnElement[bool]:
    """Whether an attempt is shown on its job: a job's own callback (`shows_on_job`)."""
    return and_(job_id.is_not(None), event_type.like(literal_column("'job.%'")))


def shown_on_job(last: Any) -> dict[str, Any]:
    """The job columns that show the last attempt of its callback (`last` as in moved_on)."""
    return {
        "callback_sent_at": last.c.attempted_at,
        "callback_status_code": last.c.status_code,
        "callback_error": last.c.error,
    }


def encode_body(payload: Any) -> str | None:
    """The JSON text a payload is POSTed as; None for one that is no JSON object (its
    delivery fails alone, on its schedule, see webhooks/delivery.py).
    """
    if not isinstance(payload, dict):
        return None
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or infinity: stored as the database keeps them, sent as null
        return None


#: The columns of a queued message's row (all but its number).
MESSAGE_FIELDS = tuple(column.name for column in outbox.columns if column.name != "id")


def message_rows(messages: Sequence[OutboxMessage]) -> list[dict[str, Any]]:
    """The outbox rows that queue `messages` (their `MESSAGE_FIELDS`)."""
    return [
        {
            "webhook_id": message.webhook_id,
            "job_id": message.job_id,
            "event_type": message.event_type,
            "url": message.url,
            "payload": message.payload,
            "body": encode_body(message.payload),
            "trace_context": message.trace_context,
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": message.created_at,
            "locked_until": None,
            "created_at": message.created_at,
            "delivered_at": None,
        }
        for message in messages
    ]


def insert_messages(connection: Connection, messages: Sequence[OutboxMessage]) -> None:
    """Queue messages for delivery, in the caller's transaction (one batch on the driver)."""
    if messages:
        prepared.write_many(connection, _INSERT_MESSAGE, message_rows(messages))


def pending_count(connection: Connection) -> int:
    """How many messages wait to be delivered (or retried)."""
    statement = select(func.count()).where(outbox.c.state == PENDING)
    return int(connection.execute(statement).scalar_one())


def requeue_callback(connection: Connection, job_id: str, now: datetime) -> str:
    """Make the job's callback due again, to its current callback_url, with the same
    webhook-id (which it returns).
    """
    row = connection.execute(
        select(outbox.c.id, outbox.c.webhook_id)
        .where(outbox.c.job_id == job_id, outbox.c.event_type.like("job.%"))
        .order_by(outbox.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFoundError(f"job {job_id} has no callback to deliver")
    url = connection.execute(select(jobs.c.callback_url).where(jobs.c.id == job_id)).scalar()
    changes: dict[str, Any] = {"state": PENDING, "next_attempt_at": now, "locked_until": None}
    if url:
        changes["url"] = url
    connection.execute(update(outbox).where(outbox.c.id == row.id).values(**changes))
    return str(row.webhook_id)
