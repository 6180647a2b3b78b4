"""Which database a `JOBPULSE_DATABASE_URL` names, and its backend: each driver package
(storage/sqlite/, storage/postgres/) registers its backend, which knows the URLs it serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import make_url
from sqlalchemy.engine import URL

from jobpulse.errors import ValidationError

if TYPE_CHECKING:
    from jobpulse.storage.engine import Backend

_BACKENDS: list[Backend] = []


def register(backend: Backend) -> None:
    """Make `backend` the one of the URLs it serves (see `Backend.serves`)."""
    _BACKENDS.append(backend)


def _parsed(url: str) -> tuple[URL, Backend]:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(f"not a database URL: {url!r}") from exc
    for backend in _BACKENDS:
        if backend.serves(parsed):
            return parsed, backend
    name = parsed.drivername
    raise ValidationError(f"unsupported database {name!r}: use sqlite:/// or postgresql://")


def backend_of(url: str) -> Backend:
    """The backend of the database at `url` (ValidationError for one jobpulse cannot serve)."""
    parsed, backend = _parsed(url)
    backend.url(parsed)  # refuses a URL it cannot serve
    return backend


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for a plain `sqlite:///…` or `postgresql://…` setting."""
    parsed, backend = _parsed(url)
    return backend.url(parsed)
