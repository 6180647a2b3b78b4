"""The tables, as SQLAlchemy Core: jobs, their history, API keys and the webhook outbox.

Every listing is ordered by (created_at, id), so each index that serves a filter ends
with those two columns and a page is one index range scan.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from jobpulse.domain import JobStatus
from jobpulse.storage.dialects import Dialect as Driven
from jobpulse.storage.dialects import dialect_of


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database; a driver that keeps them its own way
    (SQLite: naive UTC text) binds and reads them itself (`Dialect.datetime_binder`).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        return dialect_of(dialect).datetime_binder() or super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        found = dialect_of(dialect).datetime_reader()
        return found or super().result_processor(dialect, coltype)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)


def utc(value: datetime) -> datetime:
    """`value` in UTC; ValueError for a naive datetime."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given; jobpulse stores UTC only")
    return value.astimezone(UTC)


def _chosen(
    dialect: Dialect, fallback: TypeEngine[Any], choose: Callable[[Driven], TypeEngine[Any]]
) -> TypeEngine[Any]:
    """The type the driver of `dialect` chooses; `fallback` where none drives it (a
    statement printed rather than run).
    """
    try:
        driver = dialect_of(dialect)
    except LookupError:
        return fallback
    return dialect.type_descriptor(choose(driver))


class Json(TypeDecorator[Any]):
    """A JSON document, of the type its database keeps documents in (PostgreSQL's jsonb)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _chosen(dialect, self.impl_instance, lambda driver: driver.json_type())

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        # As JSON's: a key in `metadata ->> key` is text, not a document.
        return self.impl_instance.coerce_compared_value(op, value)


class Serial(TypeDecorator[int]):
    """An integer key its database numbers: SQLite's rowid there, a bigint elsewhere."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _chosen(dialect, self.impl_instance, lambda driver: driver.serial_type())


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_STATUSES = ", ".join(f"'{status.value}'" for status in JobStatus)


def _partial_index(name: str, *columns: str, where: str | None) -> Index:
    """An index on `columns`, over the rows `where` holds for (all rows without it)."""
    kwargs: dict[str, Any] = {}
    if where is not None:
        kwargs = {"sqlite_where": text(where), "postgresql_where": text(where)}
    return Index(name, *columns, **kwargs)


def _ordered_index(name: str, *columns: str, where: str | None = None) -> Index:
    """An index on `columns` then (created_at, id), optionally partial."""
    return _partial_index(name, *columns, "created_at", "id", where=where)


jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("organization_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("job_type", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("stop_reason", String(64)),
    Column("background", Boolean, nullable=False),
    Column("metadata", Json, nullable=False),
    # metadata.source_id, kept in a column of its own so that filtering on it uses an index.
    Column("source_id", String(255)),
    Column("idempotency_key", String(255)),
    Column("callback_url", Text),
    Column("callback_sent_at", UTCDateTime),
    Column("callback_status_code", Integer),
    Column("callback_error", Text),
    Column("ttft_ns", BigInteger),
    Column("total_duration_ns", BigInteger),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("deadline_at", UTCDateTime),
    Column("heartbeat_timeout_s", Float),
    Column("stuck_since", UTCDateTime),
    Column("stale_after_s", Float),
    # The LLM calls' totals (jobpulse.usage.rules), NULL before the first (storage/usage.py).
    Column("usage", Json),
    CheckConstraint(f"status IN ({_STATUSES})", name="status"),
    CheckConstraint("ttft_ns >= 0 AND total_duration_ns >= 0", name="timings"),
    _ordered_index("ix_jobs_org", "organization_id"),
    _ordered_index("ix_jobs_org_user", "organization_id", "user_id"),
    _ordered_index("ix_jobs_org_status", "organization_id", "status"),
    _ordered_index("ix_jobs_org_user_status", "organization_id", "user_id", "status"),
    _ordered_index("ix_jobs_org_type", "organization_id", "job_type"),
    _ordered_index(
        "ix_jobs_org_source", "organization_id", "source_id", where="source_id IS NOT NULL"
    ),
    _ordered_index("ix_jobs_org_stuck", "organization_id", where="stuck_since IS NOT NULL"),
    _partial_index("ix_jobs_active_updated", "status", "updated_at", where="completed_at IS NULL"),
    _partial_index("ix_jobs_completed", "completed_at", where="completed_at IS NOT NULL"),
    _partial_index(
        "ix_jobs_stale_after",
        "updated_at",
        where="stale_after_s IS NOT NULL AND completed_at IS NULL",
    ),
    _partial_index(
        "ix_jobs_deadline", "deadline_at", where="deadline_at IS NOT NULL AND completed_at IS NULL"
    ),
    # The jobs the sweeper watches for heartbeats: without it each sweep read every job.
    _partial_index(
        "ix_jobs_watched",
        "status",
        where="heartbeat_timeout_s IS NOT NULL AND completed_at IS NULL",
    ),
    Index(
        "uq_jobs_idempotency",
        "organization_id",
        "user_id",
        "idempotency_key",
        unique=True,
    ),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("stop_reason", String(64)),
    Column("applied", Boolean, nullable=False),
    Column("reason", Text),
    Column("actor", String(128)),
    Column("at", UTCDateTime, nullable=False),
    # PostgreSQL: the writing transaction's id (a column default), the stream's order with
    # `id` (see storage/events.py). SQLite leaves it empty: its ids are in commit order.
    Column("txid", BigInteger),
    Index("ix_job_events_job_id", "job_id", "id"),
    _partial_index("ix_job_events_position", "txid", "id", where="txid IS NOT NULL"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("organization_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("is_admin", Boolean, nullable=False),
    Column("name", String(255)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

#: Dashboard sign-ins, each by an API key: a session lasts until it expires, is signed out
#: (`ended_at`) or its key is revoked. The cookie holds the session's token; `id` is its
#: SHA-256, so the table alone signs no one in.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64), ForeignKey("api_keys.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("webhook_id", String(64), nullable=False, unique=True),
    # No foreign key: deleting a job must not drop the news of its end.
    Column("job_id", String(64)),
    Column("event_type", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", Json, nullable=False),
    #: The JSON text POSTed, made once when the message is written (None: written before
    #: bodies were kept, or a payload that cannot be sent as JSON; see outbox.py).
    Column("body", Text),
    Column("trace_context", Json),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_outbox_job_id", "job_id"),
    _partial_index("ix_outbox_finished", "created_at", where="state != 'pending'"),
    # In the claims' order, so a claim reads its rows off the index and stops (PostgreSQL
    # sorted every due row without the id when many were due at once).
    _partial_index("ix_outbox_due", "next_attempt_at", "id", where="state = 'pending'"),
)

callback_attempts = Table(
    "callback_attempts",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("outbox_id", Serial, nullable=False),
    Column("webhook_id", String(64), nullable=False),
    Column("job_id", String(64)),
    Column("event_type", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Column("state", String(16), nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Index("ix_callback_attempts_job_id", "job_id", "id"),
)

job_steps = Table(
    "job_steps",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_job_steps_job_id_step_id", "job_id", "step_id", unique=True),
)

#: The provider batches `llm_batch` jobs follow, while they are followed (see batches.py).
batch_polls = Table(
    "batch_polls",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("organization_id", String(128), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("batch_id", String(255), nullable=False),
    # Due then; a claim moves it past its lease, so no other poller takes it meanwhile.
    Column("next_poll_at", UTCDateTime, nullable=False),
    Column("polled_at", UTCDateTime),
    Column("not_found_since", UTCDateTime),
    Column("cancel_sent_at", UTCDateTime),
    Index("ix_batch_polls_next_poll_at", "next_poll_at"),
)

# /v1/stats without scanning the jobs (storage/rollups.py). Triggers on `jobs` (migration
# 0009) append a row, in the writing transaction, whenever a counted field of a job changes:
# its old values (none for a job created) and its new ones (none for a job deleted); a
# background fold sums them into `job_rollups` and deletes them. A job's organization, type
# and creation time never change. No key and no index: the trigger's insert stays cheap
# (SQLite folds by its rowid).
job_rollup_deltas = Table(
    "job_rollup_deltas",
    metadata,
    Column("organization_id", String(128), nullable=False),
    Column("job_type", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # None in the deltas written before migration 0015, which `user_rollups` leaves out
    # (it was built from the jobs as they were then).
    Column("user_id", String(128)),
    *(
        column
        for side in ("old", "new")
        for column in (
            Column(f"{side}_status", String(16)),
            Column(f"{side}_stop_reason", String(64)),
            Column(f"{side}_completed_at", UTCDateTime),
            Column(f"{side}_ttft_ns", BigInteger),
            Column(f"{side}_total_duration_ns", BigInteger),
        )
    ),
)


def _rollup(name: str, *scope: str) -> Table:
    """A rollups table: jobs counted per `scope` (the organization, and the user), type,
    hour, status and stop reason, in four facets (see storage/rollups.py): created in the
    hour; by TTFT bucket; by duration bucket; ended in it.
    """
    return Table(
        name,
        metadata,
        *(Column(column, String(128), primary_key=True) for column in scope),
        Column("hour", UTCDateTime, primary_key=True),
        Column("facet", SmallInteger, primary_key=True, autoincrement=False),
        Column("job_type", String(128), primary_key=True),
        Column("status", String(16), primary_key=True),
        # '' for none: a key column is never NULL.
        Column("stop_reason", String(64), primary_key=True),
        # The histogram bucket's index; -1 in the facets without one.
        Column("bucket", SmallInteger, primary_key=True, autoincrement=False),
        Column("jobs", BigInteger, nullable=False),
        # SQLite: rows kept in key order in one b-tree, no lookup from the key's index to a
        # row.
        sqlite_with_rowid=False,
    )


job_rollups = _rollup("job_rollups", "organization_id")
#: The same counts for each user of an organization: a member's view (or an admin's of one
#: user) reads its whole hours here rather than scanning the user's jobs.
user_rollups = _rollup("user_rollups", "organization_id", "user_id")

#: The jobs page sorted by duration or time to first token, slowest first (storage/views.py):
#: a keyset on (value, id) within an organization, or one member's jobs.
SORT_INDEXES = tuple(
    _partial_index(
        f"ix_jobs_{scope}_{column}", *columns, column, "id", where=f"{column} IS NOT NULL"
    )
    for column in ("total_duration_ns", "ttft_ns")
    for scope, columns in (
        ("org", ("organization_id",)),
        ("org_user", ("organization_id", "user_id")),
    )
)
for _index in SORT_INDEXES:
    jobs.append_constraint(_index)
