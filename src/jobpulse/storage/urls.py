"""Which database a `JOBPULSE_DATABASE_URL` names, as the URL SQLAlchemy drives it with."""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.engine import URL

from jobpulse.errors import ValidationError


def database_url(url: str) -> URL:
    """The SQLAlchemy URL for a plain `sqlite:///…` or `postgresql://…` setting."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValidationError("SQLite needs a file: use sqlite:///path/to/jobpulse.db")
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValidationError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
