"""The wire format of POST /v1/jobs/reports: the reports, each read on its own (one that is
not a report is answered with its own validation error, the others applied), and the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic import ValidationError as PydanticValidationError

from jobpulse.public import StatusName
from jobpulse.schemas import ErrorDetail, Heartbeat, JobCreate, JobUpdate


class ReportCreate(BaseModel):
    """One report: the job its idempotency key names (made from `job` if there is none yet,
    as POST /v1/jobs with that Idempotency-Key), and what to apply to it: `update` (the
    fields of PATCH /v1/jobs/{id}) or `heartbeat` (that of POST …/heartbeat), or neither.
    """

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(min_length=1, max_length=255)
    job: JobCreate
    update: JobUpdate | None = None
    heartbeat: Heartbeat | None = None

    @model_validator(mode="after")
    def _one_change(self) -> ReportCreate:
        if self.update is not None and self.heartbeat is not None:
            raise ValueError("give update or heartbeat, not both")
        return self


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An entry of the request that is not a report: answered with why, the others applied."""

    #: Its idempotency key, if it has a readable one.
    idempotency_key: str | None
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)


def read_report(value: object) -> ReportCreate | Unreadable:
    """`value` as a report, or why it is not one."""
    if not isinstance(value, dict):
        message = "a report is a JSON object"
        return Unreadable(None, message, [{"loc": [], "message": message, "type": "dict_type"}])
    try:
        return ReportCreate.model_validate(value)
    except PydanticValidationError as exc:
        problems: list[dict[str, Any]] = [
            {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
    where = ".".join(str(part) for part in problems[0]["loc"])
    message = str(problems[0]["message"])
    key = value.get("idempotency_key")
    readable = key if isinstance(key, str) and 1 <= len(key) <= 255 else None
    return Unreadable(readable, f"{where}: {message}" if where else message, problems)


#: A report as the request carries it; shown in OpenAPI as ReportCreate.
Report = Annotated[
    ReportCreate | Unreadable, PlainValidator(read_report, json_schema_input_type=ReportCreate)
]


class ReportsRequest(BaseModel):
    """The body of POST /v1/jobs/reports."""

    model_config = ConfigDict(extra="forbid")

    reports: list[Report] = Field(
        description="applied in order for one idempotency key; reports of different keys "
        "may be applied in any order"
    )


class ReportResult(BaseModel):
    """What became of one report: its job's id and status, or the error that refused it
    (`job_id` too when the job exists)."""

    idempotency_key: str | None
    job_id: str | None = None
    status: StatusName | None = None
    error: ErrorDetail | None = None


class ReportsPublic(BaseModel):
    """The answer of POST /v1/jobs/reports: one result a report, in the request's order."""

    results: list[ReportResult]
