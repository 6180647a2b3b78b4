"""Rollups for /v1/stats: the deltas table, the triggers on `jobs` that fill it in the writing
transaction, and the rollups table the fold sums them into (see storage/rollups.py). The
jobs already stored are entered as deltas, folded by the first `serve`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobpulse.storage.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: The fields of a job the rollups count by, as they are copied into a delta.
_FIELDS = (
    "organization_id",
    "job_type",
    "status",
    "stop_reason",
    "created_at",
    "completed_at",
    "ttft_ns",
    "total_duration_ns",
)
_COLUMNS = ", ".join(("sign", *_FIELDS))


def _image(sign: int, row: str) -> str:
    """A delta's VALUES tuple of the trigger row `row` (OLD or NEW)."""
    return "(" + ", ".join((str(sign), *(f"{row}.{name}" for name in _FIELDS))) + ")"


def _changed(old: str, new: str, distinct: str) -> str:
    """A condition true when a counted field differs between the two rows."""
    return " OR ".join(f"{old}.{name} {distinct} {new}.{name}" for name in _FIELDS)


_POSTGRES = [
    f"""
    CREATE FUNCTION jobpulse_rollup_delta() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO job_rollup_deltas ({_COLUMNS}) VALUES {_image(1, "NEW")};
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO job_rollup_deltas ({_COLUMNS}) VALUES {_image(-1, "OLD")};
        ELSE
            INSERT INTO job_rollup_deltas ({_COLUMNS})
            VALUES {_image(-1, "OLD")}, {_image(1, "NEW")};
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER jobs_rollup_insert_delete AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobpulse_rollup_delta()
    """,
    f"""
    CREATE TRIGGER jobs_rollup_update AFTER UPDATE ON jobs
    FOR EACH ROW WHEN ({_changed("OLD", "NEW", "IS DISTINCT FROM")})
    EXECUTE FUNCTION jobpulse_rollup_delta()
    """,
]

_SQLITE = [
    f"""
    CREATE TRIGGER jobs_rollup_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_rollup_deltas ({_COLUMNS}) VALUES {_image(1, "NEW")};
    END
    """,
    f"""
    CREATE TRIGGER jobs_rollup_delete AFTER DELETE ON jobs BEGIN
        INSERT INTO job_rollup_deltas ({_COLUMNS}) VALUES {_image(-1, "OLD")};
    END
    """,
    f"""
    CREATE TRIGGER jobs_rollup_update AFTER UPDATE ON jobs
    WHEN {_changed("OLD", "NEW", "IS NOT")} BEGIN
        INSERT INTO job_rollup_deltas ({_COLUMNS})
        VALUES {_image(-1, "OLD")}, {_image(1, "NEW")};
    END
    """,
]


def upgrade() -> None:
    op.create_table(
        "job_rollup_deltas",
        # No key and no index, so that the triggers' inserts stay cheap.
        sa.Column("sign", sa.SmallInteger(), nullable=False),
        sa.Column("organization_id", sa.String(128), nullable=False),
        sa.Column("job_type", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("ttft_ns", sa.BigInteger()),
        sa.Column("total_duration_ns", sa.BigInteger()),
    )
    op.create_table(
        "job_rollups",
        sa.Column("organization_id", sa.String(128), primary_key=True),
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("facet", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("job_type", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("stop_reason", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
    )
    statements = _POSTGRES if op.get_context().dialect.name == "postgresql" else _SQLITE
    for statement in statements:
        op.execute(statement)
    op.execute(
        f"INSERT INTO job_rollup_deltas ({_COLUMNS}) SELECT 1, {', '.join(_FIELDS)} FROM jobs"
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER jobs_rollup_update ON jobs")
        op.execute("DROP TRIGGER jobs_rollup_insert_delete ON jobs")
        op.execute("DROP FUNCTION jobpulse_rollup_delta()")
    else:
        for name in ("jobs_rollup_insert", "jobs_rollup_delete", "jobs_rollup_update"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("job_rollups")
    op.drop_table("job_rollup_deltas")
