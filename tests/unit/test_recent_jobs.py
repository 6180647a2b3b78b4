"""The copies a process keeps of the jobs it wrote last (storage/recent.py): the newest,
each with its version, at most as many as it was given room for."""

from __future__ import annotations

from datetime import UTC, datetime

from jobpulse.domain import Job, JobStatus
from jobpulse.storage.recent import RecentJobs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(number: int, status: JobStatus = JobStatus.RUNNING) -> Job:
    return Job(
        id=f"job-{number}",
        organization_id="o",
        user_id="u",
        job_type="t",
        status=status,
        created_at=T0,
        updated_at=T0,
    )


def test_a_job_kept_is_found_with_its_version_until_forgotten() -> None:
    kept = RecentJobs(size=4)
    kept.keep(job(1), 10)
    kept.keep(job(1, JobStatus.COMPLETED), 11)  # its last write is what stays
    assert kept.get("job-1") == (job(1, JobStatus.COMPLETED), 11)
    assert kept.get("job-2") is None
    kept.forget(["job-1", "job-2"])
    assert kept.get("job-1") is None


def test_past_its_room_the_job_written_longest_ago_goes() -> None:
    kept = RecentJobs(size=3)
    for number in (1, 2, 3):
        kept.keep(job(number), number)
    kept.keep(job(1), 4)  # written again: the newest now
    kept.keep(job(5), 5)
    assert [kept.get(f"job-{n}") is not None for n in (1, 2, 3, 5)] == [True, False, True, True]


def test_what_a_caller_does_to_the_job_it_was_handed_does_not_reach_the_copy() -> None:
    kept = RecentJobs()
    handed = job(1).changed({"metadata": {"a": {"b": [1]}}, "usage": {"calls": 1}})
    kept.keep(handed, 7)
    handed.metadata["a"]["b"].append(2)
    handed.metadata["c"] = 3
    assert handed.usage is not None
    handed.usage["calls"] = 2
    found = kept.get("job-1")
    assert found is not None
    copy, version = found
    assert (copy.metadata, copy.usage, version) == ({"a": {"b": [1]}}, {"calls": 1}, 7)
