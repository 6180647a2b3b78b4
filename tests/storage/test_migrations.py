"""The packaged migrations build exactly the schema the models describe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, bindparam, inspect, text

from jobpulse import Actor, JobFilter, JobManager, Settings
from jobpulse.stats.figures import Figures
from jobpulse.stats.fold import fold_stats
from jobpulse.stats.windows import Bucket, Window
from jobpulse.storage.engine import run_in_transaction
from jobpulse.storage.migrate import alembic_config, upgrade
from jobpulse.storage.outbox import Attempt, insert_messages
from jobpulse.storage.sql_store import open_store
from jobpulse.storage.tables import UTCDateTime, metadata
from jobpulse.webhooks import payload
from tests.clock import T0


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def indexes(connection: Connection) -> dict[str, set[str]]:
    found = inspect(connection)
    return {name: {ix["name"] or "" for ix in found.get_indexes(name)} for name in metadata.tables}


async def test_upgrade_head_on_an_empty_database_equals_the_models(
    empty_database_url: str,
) -> None:
    await upgrade(empty_database_url)
    assert await run_in_transaction(empty_database_url, differences) == []
    found = await run_in_transaction(empty_database_url, indexes)
    expected = {
        name: {ix.name or "" for ix in table.indexes} for name, table in metadata.tables.items()
    }
    for name, wanted in expected.items():
        assert wanted <= found[name], name


async def test_no_column_of_a_job_has_a_default(empty_database_url: str) -> None:
    # A batch of new jobs leaves out of its INSERT the columns NULL in all of them
    # (storage/postgres/writes.py): a default would then take the place of that NULL.
    await upgrade(empty_database_url)

    def defaults(connection: Connection) -> dict[str, Any]:
        columns = inspect(connection).get_columns("jobs")
        return {column["name"]: column["default"] for column in columns if column["default"]}

    assert await run_in_transaction(empty_database_url, defaults) == {}


async def test_upgrade_is_repeatable(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    await upgrade(empty_database_url)


async def test_upgrading_to_user_rollups_counts_the_jobs_already_stored(
    empty_database_url: str,
) -> None:
    """Jobs stored before migration 0015 (their deltas, which name no user, still waiting to
    be folded) are in the members' figures after it, as a scan finds them, counted once, and
    stay so as they change.
    """
    url = empty_database_url
    await upgrade(url, "0014")
    statuses = ("running", "completed", "failed", "pending")

    def stored(connection: Connection) -> None:
        for n in range(40):
            made = T0 + timedelta(minutes=37 * n)
            status = statuses[n % 4]
            ended = made + timedelta(seconds=n) if status in ("completed", "failed") else None
            connection.execute(
                text(
                    "INSERT INTO jobs (id, organization_id, user_id, job_type, status, "
                    "background, metadata, created_at, updated_at, completed_at) VALUES "
                    "(:id, 'org-a', :user, 'job', :status, false, '{}', :made, :made, :ended)"
                ).bindparams(
                    bindparam("made", type_=UTCDateTime()), bindparam("ended", type_=UTCDateTime())
                ),
                {
                    "id": f"job-old-{n}",
                    "user": ("alice", "bob")[n % 2],
                    "status": status,
                    "made": made,
                    "ended": ended,
                },
            )
        # As migration 0009 entered the jobs it found: deltas that name no user, waiting.
        connection.execute(
            text(
                "INSERT INTO job_rollup_deltas (organization_id, job_type, created_at, "
                "new_status, new_completed_at) SELECT organization_id, job_type, created_at, "
                "status, completed_at FROM jobs"
            )
        )

    await run_in_transaction(url, stored)
    await upgrade(url)
    manager = JobManager.from_settings(Settings(database_url=url))
    try:
        window = Window(T0 - timedelta(hours=2), T0 + timedelta(days=2), Bucket.HOUR)
        scan = JobFilter(created_after=T0 - timedelta(days=1))
        alice = Actor("org-a", "alice")
        for moved in range(3):
            for actor in (alice, Actor("org-a", "bob"), Actor("org-a", "root", is_admin=True)):
                rolled = await Figures(manager).stats(actor, JobFilter(), window)
                assert rolled == await Figures(manager).stats(actor, scan, window)
                assert rolled.total == (40 if actor.is_admin else 20)
            await manager.update_job(alice, f"job-old-{4 * moved}", status="completed")
            await fold_stats(manager.store)
    finally:
        await manager.close()


async def test_attempts_are_recorded_after_migration_0017_is_undone_and_done_again(
    empty_database_url: str,
) -> None:
    """Migration 0017 (what deliveries write through) undoes cleanly, and once done again a
    claimed message's attempt is kept and moves it on.
    """
    url = empty_database_url
    await upgrade(url)

    def migrate(connection: Connection, action: str, revision: str) -> None:
        getattr(command, action)(alembic_config(connection), revision)

    await run_in_transaction(url, migrate, "downgrade", "0016")
    await run_in_transaction(url, migrate, "upgrade", "head")
    store = open_store(Settings(database_url=url))
    try:
        message = payload.alert("http://hooks.example/ops", "callback.exhausted", {"n": 1}, T0)
        await store.database.write(insert_messages, [message])
        [claimed] = await store.claim_outbox(T0, T0 + timedelta(seconds=30), 10, None)
        sent = Attempt(1, T0, 200, None, 1.5, "delivered", None)
        await store.record_attempts([(claimed, sent, None)])
        assert await store.claim_outbox(T0 + timedelta(hours=1), T0, 10, None) == []
        kept = await store.database.read(
            lambda connection: connection.execute(
                text("SELECT webhook_id, status_code FROM callback_attempts")
            ).all()
        )
        assert [tuple(row) for row in kept] == [(message.webhook_id, 200)]
    finally:
        await store.close()
