"""/v1/jobs/{id}/steps: the steps of a job, each firing the step-complete webhook."""

from __future__ import annotations

from fastapi import APIRouter, status

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES
from jobpulse.documents import repaired
from jobpulse.schemas import StepCreate, StepPublic

router = APIRouter(prefix="/v1/jobs/{job_id}/steps", tags=["steps"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StepPublic)
async def record_step(job_id: str, body: StepCreate, caller: Authenticated) -> StepPublic:
    """Record a step (once per step_id: a repeat returns the first record)."""
    step = await caller.jobs.record_step(caller.actor, job_id, **body.model_dump())
    return StepPublic.model_validate(step)


@router.get("", response_model=list[StepPublic])
async def list_steps(job_id: str, caller: Authenticated) -> list[StepPublic]:
    """The job's steps, oldest first (details stored before the JSON policy cut to it)."""
    return [
        StepPublic.model_validate(step | {"metadata": repaired(step["metadata"]) or {}})
        for step in await caller.jobs.list_steps(caller.actor, job_id)
    ]
