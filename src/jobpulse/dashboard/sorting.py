"""The jobs page sorted by duration or time to first token, slowest first: keyset pages on
the indexes of migration 0014, the cursor being the (value, id) of the last job shown.
"""

from __future__ import annotations

from jobpulse.domain import Actor, Job
from jobpulse.errors import InvalidCursorError
from jobpulse.jobs.manager import JobManager
from jobpulse.listing import JobFilter

#: The page's orders that sort by a measure, and the job field each reads.
SORTED_BY = {"duration": "total_duration_ns", "ttft": "ttft_ns"}


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """(value, id) from 'value:id'; InvalidCursorError for anything else."""
    if not cursor:
        return None
    value, _, job_id = cursor.partition(":")
    if not value.isdigit() or not job_id:
        raise InvalidCursorError(f"cursor {cursor!r} is not one this page made")
    return int(value), job_id


def next_cursor(found: list[Job], order: str, limit: int) -> str | None:
    """The cursor of the next page, if the page was full."""
    field = SORTED_BY.get(order)
    if field is None or len(found) < limit:
        return None
    last = found[-1]
    return f"{getattr(last, field)}:{last.id}"


async def slowest_page(
    jobs: JobManager, actor: Actor, query: JobFilter, order: str, cursor: str | None, limit: int
) -> list[Job]:
    """A page of the jobs with a value of the measure `order` names, the largest first."""
    after = parse_cursor(cursor)
    async with jobs.reads.turn(actor.organization_id):
        return await jobs.store.list_slowest(actor, query, order, after, limit)
