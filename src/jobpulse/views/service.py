"""Saving, listing and removing the saved views of the jobs page, through the store."""

from __future__ import annotations

import uuid
from datetime import datetime

from jobpulse.domain import Actor
from jobpulse.storage.store import JobStore
from jobpulse.views.rules import SavedView, check_view


class SavedViews:
    """A user's named jobs-page filters, and those shared in the organization."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def save(
        self, actor: Actor, name: str, query: str, *, shared: bool, now: datetime
    ) -> SavedView:
        """Save the jobs page's `query` as `name` (replacing the actor's view of that name)."""
        name, query = check_view(name, query)
        view = SavedView(
            id=f"view-{uuid.uuid4()}",
            organization_id=actor.organization_id,
            user_id=actor.user_id,
            name=name,
            query=query,
            shared=shared,
            created_at=now,
        )
        return await self.store.save_view(view)

    async def list(self, actor: Actor) -> list[SavedView]:
        """The actor's views and those shared in its organization."""
        return await self.store.list_views(actor)

    async def delete(self, actor: Actor, view_id: str) -> None:
        """Remove a view (its owner, or an admin of its organization)."""
        await self.store.delete_view(actor, view_id)
