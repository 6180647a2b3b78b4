"""Fixtures of the executor tests: jobpulse served for a module, and the API as a user sees it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobpulse.client import JobPulse
from tests.integrations.executors import Jobpulse


@pytest.fixture(scope="module")
def jobpulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobpulse]:
    """jobpulse served for the module's tests (an outage test stops and restarts it)."""
    database = tmp_path_factory.mktemp("jobpulse") / "jobpulse.db"
    # The sweeper looks often: a killed worker's jobs are flagged within seconds.
    served = Jobpulse(f"sqlite:///{database}", env={"JOBPULSE_SWEEP_INTERVAL_S": "0.5"})
    served.start()
    yield served
    served.stop()


@pytest.fixture
def api(jobpulse: Jobpulse) -> Iterator[JobPulse]:
    """The SDK with the admin key: what a user of the dashboard or the API sees."""
    with jobpulse.client() as client:
        yield client
