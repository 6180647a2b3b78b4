"""Saved views and the deliveries page on SQL: statements, and the mixin of SqlJobStore."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    bindparam,
    delete,
    desc,
    func,
    or_,
    select,
    tuple_,
    update,
)

from jobpulse.domain import Actor, Job
from jobpulse.errors import NotFoundError
from jobpulse.listing import JobFilter
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.engine import Database
from jobpulse.storage.feature_tables import saved_views
from jobpulse.storage.repository import SELECT_JOB, job_filter_clauses, to_job
from jobpulse.storage.tables import callback_attempts, jobs, outbox
from jobpulse.views.rules import SavedView

_VIEW_COLUMNS = ("id", "organization_id", "user_id", "name", "query", "shared", "created_at")


def _view(row: Any) -> SavedView:
    return SavedView(**{name: getattr(row, name) for name in _VIEW_COLUMNS})


def _mine(organization_id: str, user_id: str, name: str) -> Any:
    return and_(
        saved_views.c.organization_id == organization_id,
        saved_views.c.user_id == user_id,
        saved_views.c.name == name,
    )


def save_view(connection: Connection, view: SavedView) -> SavedView:
    """Insert the view, or replace the query and sharing of the owner's one of that name."""
    same = _mine(view.organization_id, view.user_id, view.name)
    earlier = connection.execute(select(saved_views).where(same)).first()
    if earlier is None:
        values = {name: getattr(view, name) for name in _VIEW_COLUMNS}
        connection.execute(saved_views.insert().values(**values))
        return view
    connection.execute(update(saved_views).where(same).values(query=view.query, shared=view.shared))
    return SavedView(
        **{
            **{n: getattr(earlier, n) for n in _VIEW_COLUMNS},
            "query": view.query,
            "shared": view.shared,
        }
    )


def _seen_by(actor: Actor) -> Any:
    return and_(
        saved_views.c.organization_id == actor.organization_id,
        or_(saved_views.c.shared.is_(True), saved_views.c.user_id == actor.user_id),
    )


def list_views(connection: Connection, actor: Actor) -> list[SavedView]:
    rows = connection.execute(
        select(saved_views)
        .where(_seen_by(actor))
        .order_by(saved_views.c.name, saved_views.c.user_id)
    )
    return [_view(row) for row in rows]


def get_view(connection: Connection, actor: Actor, view_id: str) -> SavedView:
    row = connection.execute(
        select(saved_views).where(saved_views.c.id == view_id, _seen_by(actor))
    ).first()
    if row is None:
        raise NotFoundError(f"view {view_id} not found")
    return _view(row)


def delete_view(connection: Connection, actor: Actor, view_id: str) -> None:
    # Looked up in the whole organization: an admin may remove a view it cannot see (a
    # member's private one), as `SavedView.can_be_removed_by` says.
    row = connection.execute(
        select(saved_views).where(
            saved_views.c.id == view_id, saved_views.c.organization_id == actor.organization_id
        )
    ).first()
    if row is None or not _view(row).can_be_removed_by(actor):
        raise NotFoundError(f"view {view_id} not found")
    connection.execute(delete(saved_views).where(saved_views.c.id == view_id))


def _visible_jobs(actor: Actor) -> Any:
    clause = jobs.c.organization_id == actor.organization_id
    if not actor.is_admin:
        clause = and_(clause, jobs.c.user_id == actor.user_id)
    return clause


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _on_host(url: ColumnElement[str], host: str) -> ColumnElement[bool]:
    """Whether `url` is on `host` exactly (any case, any port): not a longer host that
    starts with it, nor one that holds it.
    """
    address, lowered = f"://{_escaped(host.lower())}", func.lower(url)
    ends = [lowered.like(f"%{address}{after}%", escape="\\") for after in "/:?#"]
    return or_(lowered.like(f"%{address}", escape="\\"), *ends)


def list_deliveries(
    connection: Connection,
    actor: Actor,
    state: str | None,
    event_type: str | None,
    host: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The newest outbox messages of the actor's jobs (newest first), with the number of
    attempts made and the last one's answer.
    """
    last = (
        select(callback_attempts.c.outbox_id, func.max(callback_attempts.c.id).label("last_id"))
        .group_by(callback_attempts.c.outbox_id)
        .subquery()
    )
    where = [_visible_jobs(actor)]
    if state:
        where.append(outbox.c.state == state)
    if event_type:
        where.append(outbox.c.event_type == event_type)
    if host:
        where.append(_on_host(outbox.c.url, host))
    statement = (
        select(
            outbox.c.id,
            outbox.c.webhook_id,
            outbox.c.job_id,
            outbox.c.event_type,
            outbox.c.url,
            outbox.c.state,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.created_at,
            outbox.c.delivered_at,
            callback_attempts.c.status_code,
            callback_attempts.c.error,
            callback_attempts.c.attempted_at,
        )
        .select_from(
            outbox.join(jobs, jobs.c.id == outbox.c.job_id)
            .outerjoin(last, last.c.outbox_id == outbox.c.id)
            .outerjoin(callback_attempts, callback_attempts.c.id == last.c.last_id)
        )
        .where(*where)
        .order_by(desc(outbox.c.id))
        .limit(limit)
    )
    return [dict(row._mapping) for row in connection.execute(statement)]


#: The columns the jobs page sorts by, slowest first (each on an index of its own).
SORTABLE = {"duration": jobs.c.total_duration_ns, "ttft": jobs.c.ttft_ns}
_AFTER_VALUE = bindparam("b_after_value", type_=BigInteger())
_AFTER_ID = bindparam("b_after_id", type_=jobs.c.id.type)


def list_slowest(
    connection: Connection,
    actor: Actor,
    query: JobFilter,
    by: str,
    after: tuple[int, str] | None,
    limit: int,
) -> list[Job]:
    """The actor's jobs under `query` that have a value of `by` (`duration` or `ttft`), the
    largest first, after the keyset cursor `after` ((value, id) of the last job shown).
    """
    column = SORTABLE[by]
    clauses, params = job_filter_clauses(dialect_of(connection), actor, query)
    where = [*clauses, column.is_not(None)]
    if after is not None:
        where.append(tuple_(column, jobs.c.id) < tuple_(_AFTER_VALUE, _AFTER_ID))
        params |= {"b_after_value": after[0], "b_after_id": after[1]}
    statement = SELECT_JOB.where(*where).order_by(column.desc(), jobs.c.id.desc()).limit(limit)
    return [to_job(row) for row in connection.execute(statement, params)]


class SqlViewStore:
    """The ViewStore operations on SQL (a mixin of SqlJobStore, see storage/views_store.py)."""

    database: Database

    async def save_view(self, view: SavedView) -> SavedView:
        return await self.database.write(save_view, view)

    async def list_views(self, actor: Actor) -> list[SavedView]:
        return await self.database.read(list_views, actor)

    async def get_view(self, actor: Actor, view_id: str) -> SavedView:
        return await self.database.read(get_view, actor, view_id)

    async def delete_view(self, actor: Actor, view_id: str) -> None:
        await self.database.write(delete_view, actor, view_id)

    async def list_deliveries(
        self,
        actor: Actor,
        state: str | None,
        event_type: str | None,
        host: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        return await self.database.scan(list_deliveries, actor, state, event_type, host, limit)

    async def list_slowest(
        self,
        actor: Actor,
        query: JobFilter,
        by: str,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Job]:
        return await self.database.scan(list_slowest, actor, query, by, after, limit)
