"""/v1/jobs/reports: many reports of what tasks did, each applied to the job its idempotency
key names (made if missing), in one request: what the executor integrations send.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES
from jobpulse.errors import PayloadTooLargeError
from jobpulse.reports.applier import apply_reports
from jobpulse.reports.rules import MAX_REPORTS
from jobpulse.reports.schemas import ReportsPublic, ReportsRequest

router = APIRouter(prefix="/v1/jobs", tags=["reports"], responses=ERROR_RESPONSES)


@router.post("/reports", response_model=ReportsPublic)
async def report_jobs(body: ReportsRequest, caller: Authenticated) -> Response:
    """Apply up to 500 reports, each to the job of its `idempotency_key`: made from its `job`
    if there is none yet (as POST /v1/jobs with that Idempotency-Key), then given its
    `update` (as PATCH) or `heartbeat`. A report of the status the job is in changes its
    metadata and history only; one reaching an ended job changes nothing (a report of the
    status it ended in is answered with the job, any other with `invalid_transition` or
    `job_cancelled`). Reports of one key are applied in order; each is answered on its own,
    in order: the job's id and status, or the error that refused it (a refused report
    never stops the others; one that could not be applied now, `unavailable`, stops the
    later ones of its key, answered so too).
    """
    if len(body.reports) > MAX_REPORTS:
        raise PayloadTooLargeError(
            f"at most {MAX_REPORTS} reports a request, not {len(body.reports)}: "
            "send the others in another request"
        )
    results = await apply_reports(caller.jobs, caller.actor, body.reports)
    shown = ReportsPublic(results=results).model_dump_json(exclude_unset=True)
    return Response(shown, media_type="application/json")
