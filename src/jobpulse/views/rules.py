"""What a saved view is and which ones a user may see or remove (pure rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from jobpulse.domain import Actor
from jobpulse.errors import ValidationError

NAME_MAX = 128
QUERY_MAX = 2048
#: The jobs page's query parameters a view may hold: its filters and its order.
VIEW_PARAMS = frozenset(
    {
        "status",
        "job_type",
        "stop_reason",
        "stuck",
        "active",
        "background",
        "source_id",
        "user_id",
        "created_after",
        "created_before",
        "metadata",
        "model",
        "order",
    }
)


@dataclass(frozen=True, slots=True)
class SavedView:
    """A named jobs-page address (its query string) of one user."""

    id: str
    organization_id: str
    user_id: str
    name: str
    query: str
    shared: bool
    created_at: datetime

    def is_visible_to(self, actor: Actor) -> bool:
        """The owner's, and, shared, everyone's in the organization."""
        if self.organization_id != actor.organization_id:
            return False
        return self.shared or self.user_id == actor.user_id

    def can_be_removed_by(self, actor: Actor) -> bool:
        """By its owner, or an admin of its organization."""
        if self.organization_id != actor.organization_id:
            return False
        return actor.is_admin or self.user_id == actor.user_id


def check_view(name: str, query: str) -> tuple[str, str]:
    """The name (trimmed) and query string of a view to save; ValidationError if either is
    not one (empty or too long a name, or a parameter the jobs page does not take).
    """
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise ValidationError(f"a view's name is 1 to {NAME_MAX} characters")
    if not name.isprintable():
        raise ValidationError("a view's name is printable text")
    query = query.lstrip("?")
    if len(query) > QUERY_MAX:
        raise ValidationError(f"a view's filters are at most {QUERY_MAX} characters")
    for key, _value in parse_qsl(query, keep_blank_values=True):
        if key not in VIEW_PARAMS:
            raise ValidationError(f"{key!r} is not a filter of the jobs page")
    return name, query
