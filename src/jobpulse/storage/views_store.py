"""The storage operations of saved views and of the deliveries page (their SQL: views.py)."""

from __future__ import annotations

from typing import Any, Protocol

from jobpulse.domain import Actor, Job
from jobpulse.listing import JobFilter
from jobpulse.views.rules import SavedView


class ViewStore(Protocol):
    """Saved views of the jobs page, its sorted pages, and webhook deliveries across jobs."""

    async def save_view(self, view: SavedView) -> SavedView:
        """Store the view; one of the same owner and name is replaced (keeping its id)."""
        ...

    async def list_views(self, actor: Actor) -> list[SavedView]:
        """The actor's views and those shared in its organization, by name."""
        ...

    async def get_view(self, actor: Actor, view_id: str) -> SavedView:
        """One view the actor may see (NotFoundError otherwise)."""
        ...

    async def delete_view(self, actor: Actor, view_id: str) -> None:
        """Remove a view its owner or an admin removes (NotFoundError for any other)."""
        ...

    async def list_slowest(
        self,
        actor: Actor,
        query: JobFilter,
        by: str,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Job]:
        """A page of the actor's jobs under `query` with a `by` (`duration` or `ttft`), the
        largest first, after the keyset cursor (value, id) of the last job shown.
        """
        ...

    async def list_deliveries(
        self,
        actor: Actor,
        state: str | None,
        event_type: str | None,
        host: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The newest webhooks of the jobs the actor may see, with their last attempt."""
        ...
