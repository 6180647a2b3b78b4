"""Which database a `JOBPULSE_DATABASE_URL` names, and its driver: each driver
(storage/sqlite/, storage/postgres/) registers the backend name of the URLs it drives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import make_url
from sqlalchemy.engine import URL

from jobpulse.errors import ValidationError

if TYPE_CHECKING:
    from jobpulse.storage.engine import Driver

_DRIVERS: dict[str, Driver] = {}


def register(backend: str, driver: Driver) -> None:
    """Make `driver` the one of URLs whose backend name (`sqlite` in `sqlite:///…`) is
    `backend`.
    """
    _DRIVERS[backend] = driver


def _parsed(url: str) -> tuple[URL, Driver]:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    driver = _DRIVERS.get(backend)
    if driver is None:
        raise ValidationError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed, driver


def driver_of(url: str) -> Driver:
    """The driver of the database at `url` (ValidationError for one jobpulse cannot drive)."""
    parsed, driver = _parsed(url)
    driver.url(parsed)  # refused here if it cannot be driven
    return driver


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for a plain `sqlite:///…` or `postgresql://…` setting."""
    parsed, driver = _parsed(url)
    return driver.url(parsed)
