"""The SDK mints scoped tokens (`create_token`, sync and async) from the real app on
loopback, and a client holding one reads its job and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobpulse import ForbiddenError, NotFoundError, UnauthorizedError, ValidationError
from jobpulse.client import AsyncJobPulse, JobPulse
from tests.served import Served


def test_a_client_mints_a_token_that_reads_its_job_only(served: Served, secret: str) -> None:
    with JobPulse(served.url, secret) as jobpulse:
        job = jobpulse.create_job(job_type="agent", status="running")
        other = jobpulse.create_job(job_type="agent")
        minted = jobpulse.create_token(job_id=job.id, ttl_s=120)
        assert minted.token.startswith("jpt_")
        assert minted.scope == {"job_id": job.id}
        assert minted.expires_at - datetime.now(UTC) < timedelta(seconds=121)
        with pytest.raises(NotFoundError):
            jobpulse.create_token(job_id="job-missing")
        with pytest.raises(ValidationError):
            jobpulse.create_token(job_type="agent", ttl_s=86_401)
        with pytest.raises(ValidationError):
            jobpulse.create_token()
    with JobPulse(served.url, minted.token) as browser:
        assert browser.get_job(job.id).status == "running"
        with pytest.raises(NotFoundError):
            browser.get_job(other.id)
        with pytest.raises(ForbiddenError):
            browser.list_jobs()
        with pytest.raises(ForbiddenError):
            browser.cancel_job(job.id)
    with JobPulse(served.url, "jpt_made-up") as stranger, pytest.raises(UnauthorizedError):
        stranger.get_job(job.id)


async def test_the_async_client_mints_one_for_a_type_and_metadata(
    served: Served, secret: str
) -> None:
    async with AsyncJobPulse(served.url, secret) as jobpulse:
        red = await jobpulse.create_job(job_type="agent", metadata={"team": "red"})
        blue = await jobpulse.create_job(job_type="agent", metadata={"team": "blue"})
        minted = await jobpulse.create_token(job_type="agent", metadata={"team": "red"})
        assert minted.scope == {"job_type": "agent", "metadata": {"team": "red"}}
        assert minted.expires_at - datetime.now(UTC) > timedelta(seconds=800)  # 900 by default
    async with AsyncJobPulse(served.url, minted.token) as browser:
        assert (await browser.get_job(red.id)).metadata == {"team": "red"}
        with pytest.raises(NotFoundError):
            await browser.get_job(blue.id)
        with pytest.raises(ForbiddenError):
            await browser.create_token(job_id=red.id)
