"""One URL setting picks the database and its driver."""

from __future__ import annotations

import pytest

from jobpulse.errors import ValidationError
from jobpulse.storage.urls import database_url


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("sqlite:///./jobpulse.db", "sqlite"),
        ("sqlite:////var/lib/jobpulse.db", "sqlite"),
        ("postgresql://user@db.example/jobs", "postgresql+asyncpg"),
        ("postgresql+asyncpg://user@db.example/jobs", "postgresql+asyncpg"),
    ],
)
def test_plain_urls_choose_the_driver(given: str, driver: str) -> None:
    assert database_url(given).drivername == driver


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://root@localhost/jobs", "unsupported database"),
        ("sqlite://", "SQLite needs a file"),
        ("sqlite:///:memory:", "SQLite needs a file"),
        ("not a url", "not a database URL"),
    ],
)
def test_other_urls_are_refused(given: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        database_url(given)
