"""Everything public is exported from the package, and only that."""

from __future__ import annotations

import jobpulse


def test_all_is_sorted_and_complete() -> None:
    assert jobpulse.__all__ == sorted(jobpulse.__all__)
    public = {
        name
        for name, value in vars(jobpulse).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("jobpulse")
    }
    assert public <= set(jobpulse.__all__)
    for name in jobpulse.__all__:
        assert hasattr(jobpulse, name), name


def test_the_wire_job_has_the_domain_fields() -> None:
    """The API serializes domain Jobs directly: JobPublic must describe exactly those fields."""
    from dataclasses import fields

    from jobpulse.domain import Job
    from jobpulse.public import JobPublic

    assert set(JobPublic.model_fields) == {f.name for f in fields(Job)}
