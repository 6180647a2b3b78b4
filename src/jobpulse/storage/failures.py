"""A database driver's errors as jobpulse's: an outage (503) or a value it cannot store (422)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from jobpulse.errors import UnavailableError, ValidationError

#: SQLSTATE classes of a database that cannot serve now: connection exception, insufficient
#: resources (too many connections), operator intervention (shutting down, starting up, a
#: statement cancelled), system error.
_UNAVAILABLE_SQLSTATES = ("08", "53", "57", "58")
#: Errors of a database that cannot be reached: refused, reset, timed out, the pool waited
#: too long for a connection, the driver's connection closed under it; each driver adds its
#: own (see `register_unreachable`).
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
    PoolTimeout,
)


def register_unreachable(*errors: type[BaseException]) -> None:
    """Count a driver's own `errors` as a database that cannot be reached."""
    global _UNREACHABLE
    _UNREACHABLE = (*_UNREACHABLE, *errors)


def translate_error(exc: Exception) -> Exception:
    """UnavailableError for a database that cannot be reached or cannot serve now (refused,
    starting up, shutting down, too many connections, timed out); ValidationError for a value
    it cannot store; anything else as it is. The driver's error is the new one's cause, so a
    traceback shows both.
    """
    state = sqlstate(exc)
    translated: Exception = exc
    if isinstance(exc, DataError | UnicodeEncodeError) or state.startswith("22"):
        translated = ValidationError("a value cannot be stored: text must be UTF-8 without NUL")
    elif isinstance(exc, _UNREACHABLE) or state[:2] in _UNAVAILABLE_SQLSTATES:
        translated = UnavailableError("the database cannot be reached")
    elif isinstance(exc, DBAPIError) and exc.connection_invalidated:
        translated = UnavailableError("the database connection was lost")
    if translated is not exc:
        translated.__cause__ = exc
    return translated


def sqlstate(exc: Exception) -> str:
    """The SQLSTATE of an error (PostgreSQL's), raw from its driver or wrapped by SQLAlchemy."""
    for error in (exc, getattr(exc, "orig", None)):
        if isinstance(state := getattr(error, "sqlstate", None), str):
            return state
    return ""


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Raise translate_error's exception in place of a database driver's."""
    try:
        yield
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc
