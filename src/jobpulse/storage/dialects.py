"""What differs between the two databases, asked of the driver rather than tested by name.

Each driver (storage/sqlite/, storage/postgres/) registers a `Dialect` for SQLAlchemy's
dialect class of its database; statement builders shared by both ask `dialect_of` for the
one of their connection. A test of which database is in use lives only in the drivers.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect as SqlalchemyDialect


class Dialect(Protocol):
    """The parts of jobpulse's statements that each database spells its own way."""

    #: Commits can be announced to other processes (LISTEN/NOTIFY).
    announces: bool

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """Tell every process listening on `channel` when this transaction commits (a
        database that announces nothing does nothing).
        """
        ...


_REGISTERED: dict[type[Any], Dialect] = {}


def register(dialect_class: type[SqlalchemyDialect], dialect: Dialect) -> None:
    """Make `dialect` the one of connections whose SQLAlchemy dialect is `dialect_class`."""
    _REGISTERED[dialect_class] = dialect


def dialect_of(connection: Connection | SqlalchemyDialect) -> Dialect:
    """The registered Dialect of the connection's (or SQLAlchemy dialect's) database."""
    sqlalchemy_dialect = connection.dialect if isinstance(connection, Connection) else connection
    for cls in type(sqlalchemy_dialect).__mro__:
        found = _REGISTERED.get(cls)
        if found is not None:
            return found
    raise LookupError(f"jobpulse has no driver for {type(sqlalchemy_dialect).__name__}")
