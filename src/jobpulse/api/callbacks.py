"""/v1/jobs/{id}/callbacks: the delivery attempts of a job's webhooks, and redelivery."""

from __future__ import annotations

from fastapi import APIRouter, status

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES
from jobpulse.schemas import AttemptPublic, RetryPublic

router = APIRouter(
    prefix="/v1/jobs/{job_id}/callbacks", tags=["callbacks"], responses=ERROR_RESPONSES
)


@router.get("", response_model=list[AttemptPublic])
async def list_callbacks(job_id: str, caller: Authenticated) -> list[AttemptPublic]:
    """Every delivery attempt, oldest first."""
    attempts = await caller.jobs.list_callbacks(caller.actor, job_id)
    return [AttemptPublic.model_validate(attempt) for attempt in attempts]


@router.post("/retry", status_code=status.HTTP_202_ACCEPTED, response_model=RetryPublic)
async def retry_callback(job_id: str, caller: Authenticated) -> RetryPublic:
    """Deliver the job's callback again, with the same webhook-id."""
    return RetryPublic(webhook_id=await caller.jobs.retry_callback(caller.actor, job_id))
