"""The SDK's `report_jobs` (POST /v1/jobs/reports) against the real app on loopback: many
tasks' reports in one call, each answered on its own, a refused one stopping nothing.
"""

from __future__ import annotations

import pytest

from jobpulse.client import AsyncJobPulse, JobPulse
from jobpulse.errors import PayloadTooLargeError
from tests.served import Served

JOB = {"job_type": "task", "metadata": {"queue": "default"}}


def test_reports_of_many_tasks_become_their_jobs(served: Served, secret: str) -> None:
    reports = [
        {"idempotency_key": "task-1", "job": JOB, "update": {"status": "running"}},
        {"idempotency_key": "task-2", "job": JOB, "update": {"status": "running"}},
        {"idempotency_key": "task-1", "job": JOB, "update": {"status": "completed"}},
        {"idempotency_key": "task-3", "job": JOB, "update": {"status": "teleported"}},
    ]
    with JobPulse(served.url, secret) as client:
        results = client.report_jobs(reports)
        assert [(r["idempotency_key"], r.get("status")) for r in results] == [
            ("task-1", "running"),
            ("task-2", "running"),
            ("task-1", "completed"),
            ("task-3", None),
        ]
        assert results[3]["error"]["code"] == "validation_error"
        assert results[0]["job_id"] == results[2]["job_id"] != results[1]["job_id"]
        assert client.get_job(results[2]["job_id"]).status == "completed"
        assert client.get_job(results[1]["job_id"]).status == "running"
        assert {job.status for job in client.list_jobs(job_type="task")} == {
            "completed",
            "running",
        }


def test_more_reports_than_a_request_takes_are_refused_with_the_bound(
    served: Served, secret: str
) -> None:
    reports = [{"idempotency_key": f"task-{n}", "job": JOB} for n in range(501)]
    with JobPulse(served.url, secret) as client:
        with pytest.raises(PayloadTooLargeError, match="at most 500 reports"):
            client.report_jobs(reports)
        assert client.list_jobs(job_type="task") == []


async def test_the_async_client_reports_too(served: Served, secret: str) -> None:
    async with AsyncJobPulse(served.url, secret) as client:
        [created] = await client.report_jobs(
            [{"idempotency_key": "task-9", "job": JOB, "heartbeat": {"progress": {"step": 2}}}]
        )
        job = await client.get_job(created["job_id"])
    assert (created["status"], job.status) == ("created", "created")
    assert job.heartbeat_at is not None
    assert job.metadata == {"queue": "default", "step": 2}
