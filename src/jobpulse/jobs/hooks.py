"""What a JobManager tells the rest of its process after a commit, given at construction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hooks:
    """Callbacks run after a commit; each is optional and must not block."""

    #: Webhooks were queued (wakes the delivery worker).
    queued: Callable[[], None] | None = None
    #: History events were written, or a heartbeat (wakes the live feed).
    events: Callable[[], None] | None = None
    #: A followed LLM batch's job was ended through jobpulse (wakes the batch poller).
    batch_due: Callable[[], None] | None = None

    def webhooks_queued(self) -> None:
        """Tell the delivery worker."""
        if self.queued is not None:
            self.queued()

    def events_written(self) -> None:
        """Tell the live feed."""
        if self.events is not None:
            self.events()

    def batch_ended(self) -> None:
        """Tell the batch poller."""
        if self.batch_due is not None:
            self.batch_due()
