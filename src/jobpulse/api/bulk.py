"""/v1/jobs/cancel and /v1/jobs/callbacks/retry: act on every job the list filters match."""

from __future__ import annotations

from fastapi import APIRouter

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES
from jobpulse.bulk.actions import BulkActions
from jobpulse.bulk.rules import BulkResult
from jobpulse.bulk.schemas import BulkCancel, BulkRequest
from jobpulse.public import BulkResultPublic

router = APIRouter(prefix="/v1/jobs", tags=["bulk"], responses=ERROR_RESPONSES)


def _public(result: BulkResult) -> BulkResultPublic:
    return BulkResultPublic(matched=result.matched, changed=result.changed, skipped=result.skipped)


@router.post("/cancel", response_model=BulkResultPublic)
async def cancel_jobs(body: BulkCancel, caller: Authenticated) -> BulkResultPublic:
    """Cancel every active job the filter matches (members: their own jobs; admins: their
    organization's), in bounded batches; `dry_run` only counts.
    """
    actions = BulkActions(caller.jobs)
    query = body.filter.to_filter()
    return _public(
        await actions.cancel(caller.actor, query, dry_run=body.dry_run, reason=body.reason)
    )


@router.post("/callbacks/retry", response_model=BulkResultPublic)
async def retry_callbacks(body: BulkRequest, caller: Authenticated) -> BulkResultPublic:
    """Deliver again the callback of every ended job the filter matches that has one (the
    same webhook-id each), in bounded batches; `dry_run` only counts.
    """
    actions = BulkActions(caller.jobs)
    query = body.filter.to_filter()
    return _public(await actions.resend_callbacks(caller.actor, query, dry_run=body.dry_run))
