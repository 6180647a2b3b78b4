"""/v1/jobs/{id}/usage: the LLM calls of a job, each added to the job's `usage` totals."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from jobpulse.api.deps import Authenticated
from jobpulse.api.jobs import ERROR_RESPONSES
from jobpulse.usage.recorder import UsageRecorder
from jobpulse.usage.rules import Call, to_usd
from jobpulse.usage.schemas import CallPublic, UsageCreate

router = APIRouter(prefix="/v1/jobs/{job_id}/usage", tags=["usage"], responses=ERROR_RESPONSES)


def call_public(job_id: str, call: Call) -> CallPublic:
    """How a recorded call is shown."""
    source = call.cost_source
    return CallPublic(
        id=call.id,
        job_id=job_id,
        provider=call.provider,
        model=call.model,
        **call.tokens(),
        cost_usd=to_usd(call.cost_pusd),
        cost_source=None if source is None else source.value,
        ttft_ns=call.ttft_ns,
        duration_ns=call.duration_ns,
        recorded_at=call.recorded_at,
        late=call.late,
    )


def _recorder(request: Request) -> UsageRecorder:
    recorder: UsageRecorder = request.app.state.usage
    return recorder


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CallPublic,
    responses={200: {"model": CallPublic, "description": "a call id recorded before"}},
)
async def record_usage(
    job_id: str, body: UsageCreate, caller: Authenticated, request: Request
) -> Response:
    """Record one LLM call of the job (201), also after it has ended (the history notes
    it); a `call_id` recorded before answers its first record (200) and adds nothing.
    """
    call, new = await _recorder(request).record(caller.actor, job_id, **body.model_dump())
    code = status.HTTP_201_CREATED if new else status.HTTP_200_OK
    shown = call_public(job_id, call).model_dump_json()
    return Response(shown, status_code=code, media_type="application/json")


@router.get("", response_model=list[CallPublic])
async def list_usage(job_id: str, caller: Authenticated, request: Request) -> list[CallPublic]:
    """The job's LLM calls, in the order they were recorded."""
    calls = await _recorder(request).list_calls(caller.actor, job_id)
    return [call_public(job_id, call) for call in calls]
