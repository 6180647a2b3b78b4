"""What differs between the two databases, asked of the driver rather than tested by name.

Each driver (storage/sqlite/, storage/postgres/) registers a `Dialect` for SQLAlchemy's
dialect class of its database; statement builders shared by both ask `dialect_of` for the
one of their connection. A test of which database is in use lives only in the drivers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, Connection
from sqlalchemy.engine import Dialect as SqlalchemyDialect

if TYPE_CHECKING:
    from jobpulse.storage.changes import JobWrite
    from jobpulse.storage.prepared import Driver


class Dialect(Protocol):
    """The parts of jobpulse's statements that each database spells its own way."""

    #: Commits can be announced to other processes (LISTEN/NOTIFY).
    announces: bool

    def announce(self, connection: Connection, channel: str, payload: str) -> None:
        """Tell every process listening on `channel` when this transaction commits (a
        database that announces nothing does nothing).
        """
        ...

    # Writes

    def __hash__(self) -> int:
        """Statements built for one database are cached under its Dialect."""
        ...

    #: Runs the hot statements straight on the driver (storage/prepared.py).
    driver: Driver
    #: The transitions of one writer batch share their statements (where each statement is a
    #: round trip, and so worth sharing).
    shares_transitions: bool

    def lock_jobs(self, connection: Connection, ids: Sequence[str]) -> list[Sequence[Any]]:
        """The rows (repository.SELECT_JOB's columns) of the jobs of `ids` that exist, locked
        until the transaction ends, in id order.
        """
        ...

    def update_jobs(self, connection: Connection, writes: Sequence[JobWrite]) -> int:
        """Write each job's change where the job has the status its plan expected, with its
        rollup delta; how many jobs were written.
        """
        ...

    def insert_jobs(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store new jobs' rows (changes.INSERTED's columns), with their rollup deltas."""
        ...

    def insert_job(self, connection: Connection, row: Mapping[str, Any]) -> None:
        """Store one new job's row, with its rollup delta; SQLAlchemy's IntegrityError if a
        key of it is taken.
        """
        ...

    def is_past(
        self, moment: ColumnElement[Any], seconds: ColumnElement[Any], now: datetime
    ) -> ColumnElement[bool]:
        """`moment` plus `seconds` is not later than `now` (the sweeper's stale limits)."""
        ...

    def metadata_equals(self, key: str, param: str) -> ColumnElement[bool]:
        """A job's metadata[key] is the string bound to `param` (a number or boolean never
        matches): repository's job filters.
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
