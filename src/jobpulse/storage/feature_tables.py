"""The tables of the features beside the jobs: LLM usage and its rollups, scoped tokens,
alert rules and their episodes, saved views. They share the jobs' metadata (storage/tables.py);
the storage package imports this module, so that the metadata always holds them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
)

from jobpulse.storage.tables import Json, UTCDateTime, metadata

# LLM usage (jobpulse.usage, storage/usage.py) --------------------------------------------

#: One LLM call of a job: its tokens, its cost as fixed when recorded (in picodollars,
#: 1e-12 USD, so that sums are exact; NULL when unknown) and its timings. A job's totals are
#: kept in `jobs.usage`, written in the same transaction.
llm_usage = Table(
    "llm_usage",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    # The caller's call id (the provider's response id), or one made up: a repeat is one call.
    Column("id", String(128), primary_key=True),
    Column("organization_id", String(128), nullable=False),
    Column("job_type", String(128), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cost_pusd", BigInteger),
    # Where the cost came from: 'caller', 'prices' (the table), NULL when unknown.
    Column("cost_source", String(16)),
    Column("ttft_ns", BigInteger),
    Column("duration_ns", BigInteger),
    Column("recorded_at", UTCDateTime, nullable=False),
    # Recorded after the job had ended (a stream's last chunk after the end).
    Column("late", Boolean, nullable=False),
    Index("ix_llm_usage_job_id_recorded_at", "job_id", "recorded_at"),
    Index("ix_llm_usage_organization_id_recorded_at", "organization_id", "recorded_at"),
)

#: LLM calls summed per organization, hour of the call, job type and model, in facets (see
#: storage/usage_rollups.py): the sums (facet 0, bucket -1); calls by TTFT bucket (1); by
#: duration bucket (2). Added to in the transaction that records the calls.
llm_usage_rollups = Table(
    "llm_usage_rollups",
    metadata,
    Column("organization_id", String(128), primary_key=True),
    Column("facet", SmallInteger, primary_key=True, autoincrement=False),
    Column("hour", UTCDateTime, primary_key=True),
    Column("job_type", String(128), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("bucket", SmallInteger, primary_key=True, autoincrement=False),
    Column("calls", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    # The known costs' sum, and how many calls had none.
    Column("cost_pusd", BigInteger, nullable=False),
    Column("unpriced", BigInteger, nullable=False),
    # The output tokens of the calls with a duration, and those durations (tokens per second).
    Column("timed_output_tokens", BigInteger, nullable=False),
    Column("timed_ns", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)


# --- Scoped read-only tokens (jobpulse.tokens) ----------------------------------------------
#: Tokens a key minted for a browser: `id` is the SHA-256 of the token (the table alone reads
#: nothing), `scope` what it reads. A token dies with its key (`key_id`) and at `expires_at`.
scoped_tokens = Table(
    "scoped_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64), ForeignKey("api_keys.id"), nullable=False),
    Column("scope", Json, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_scoped_tokens_expires_at", "expires_at"),
)


# Alerts (alerts/, storage/alerts.py) -------------------------------------------------------

#: An organization's alert rules, with where their evaluation stands: due at
#: `next_evaluation_at` (a claim moves it a period on, so replicas evaluate a rule once a
#: period), firing while `firing_alert_id` names an open episode in `alerts`.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("organization_id", String(128), nullable=False),
    Column("name", String(255), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("window_s", Float, nullable=False),
    Column("above", Float, nullable=False),
    Column("min_jobs", Integer, nullable=False),
    Column("job_type", String(128)),
    Column("model", String(255)),
    Column("user_id", String(128)),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("next_evaluation_at", UTCDateTime, nullable=False),
    Column("evaluated_at", UTCDateTime),
    Column("last_value", Float),
    Column("firing_alert_id", String(64)),
    Index("ix_alert_rules_org", "organization_id", "created_at", "id"),
    Index("ix_alert_rules_due", "next_evaluation_at"),
)

#: Every episode of a rule firing, kept after its rule is deleted (no foreign key).
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("rule_id", String(64), nullable=False),
    Column("organization_id", String(128), nullable=False),
    Column("rule_name", String(255), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("above", Float, nullable=False),
    Column("window_s", Float, nullable=False),
    Column("value", Float, nullable=False),
    Column("jobs", BigInteger, nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("resolved_value", Float),
    Index("ix_alerts_org_fired", "organization_id", "fired_at"),
)


# Saved views (issue 24): a user's named jobs-page filters, shared in the organization or not.
saved_views = Table(
    "saved_views",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("organization_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    # The jobs page's query string (filters and order), as the page's address holds it.
    Column("query", Text, nullable=False),
    Column("shared", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("uq_saved_views_owner_name", "organization_id", "user_id", "name", unique=True),
    Index("ix_saved_views_org_shared", "organization_id", "shared"),
)
