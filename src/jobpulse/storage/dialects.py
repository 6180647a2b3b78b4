"""What differs between the two databases, asked of the driver rather than tested by name.

Each driver (storage/sqlite/, storage/postgres/) registers a `Dialect` for SQLAlchemy's
dialect class of its database; statement builders shared by both ask `dialect_of` for the
one of their connection. A test of which database is in use lives only in the drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.engine import Dialect as SqlalchemyDialect
from sqlalchemy.types import TypeEngine

from jobpulse.domain import JobEvent
from jobpulse.stats.windows import Bucket

if TYPE_CHECKING:
    from jobpulse.storage.changes import JobWrite, Queued
    from jobpulse.storage.outbox import AttemptRow
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
    #: A writer batch that is one statement runs outside a transaction, the statement its
    #: own (where BEGIN and COMMIT are round trips of their own).
    commits_one_statement_alone: bool
    #: `record_attempts` is one statement.
    records_in_one_statement: bool
    #: Writers of other connections hold rows a transaction may wait for (not so under one
    #: writer): a transaction that waits while holding rows must take them in one order.
    writers_wait_for_rows: bool

    def lock_jobs(self, connection: Connection, ids: Sequence[str]) -> list[Sequence[Any]]:
        """The rows (repository.SELECT_JOB's columns) of the jobs of `ids` that exist, locked
        until the transaction ends, in id order.
        """
        ...

    def read_jobs(
        self, connection: Connection, ids: Sequence[str], locked: bool
    ) -> list[Sequence[Any]]:
        """The rows of the jobs of `ids` that exist, in id order, for changes `update_jobs`
        writes where each is still as read: repository.SELECT_JOB's columns, then the row's
        version (None where the database keeps none, its one writer holding every job until
        it commits); `locked` until the transaction ends, or not.
        """
        ...

    def update_jobs(
        self,
        connection: Connection,
        writes: Sequence[JobWrite],
        events: Sequence[JobEvent],
        messages: Sequence[Queued],
    ) -> dict[str, Any]:
        """Write each job's change where the job is still as read (its version, else the
        status its plan expected), with its rollup delta; and the history rows `events` and
        outbox `messages` of the jobs written and of jobs no write names. The jobs written,
        each with the version of its row now (None where the database keeps none).
        """
        ...

    def insert_jobs(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]], events: Sequence[JobEvent]
    ) -> dict[str, Any]:
        """Store new jobs' rows (changes.INSERTED's columns), with their rollup deltas, and
        the history rows `events`; the jobs stored, each with its row's version (None where
        the database keeps none). Where writers run side by side, a row whose idempotency key
        another writer stored meanwhile is left out, its history row with it, and not among
        the jobs returned.
        """
        ...

    def insert_job(self, connection: Connection, row: Mapping[str, Any]) -> None:
        """Store one new job's row, with its rollup delta; SQLAlchemy's IntegrityError if a
        key of it is taken.
        """
        ...

    def record_attempts(self, connection: Connection, rows: Sequence[AttemptRow]) -> None:
        """Keep delivery attempts (rows of outbox.RECORDED_FIELDS, in the order they ended),
        move each message on and show the last attempt on its job (attempts.record_attempts).
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

    # Reads

    def floor_to(self, column: ColumnElement[Any], bucket: Bucket) -> ColumnElement[Any]:
        """`column` floored to its bucket, in UTC, as a naive timestamp or its text."""
        ...

    def start_of(self, column: ColumnElement[Any], span: Bucket) -> ColumnElement[Any]:
        """`column` floored to its hour or day, comparable with a stored timestamp."""
        ...

    def stream_start(self, connection: Connection) -> tuple[tuple[int, int], frozenset[int]]:
        """The stream position (txid, id) of "now", and the transaction ids of events
        committed before now that a reader may still meet after that position (see
        storage/events.py).
        """
        ...

    def stream_order(
        self, events: Table
    ) -> tuple[tuple[ColumnElement[Any], ...], tuple[ColumnElement[bool], ...]]:
        """The columns of an event's stream position, in order (its txid first, where it
        has one), and the conditions of "after the position bound as `b_txid`, `b_id`, and
        final" (see storage/events.py).
        """
        ...

    def fold_rollups(self, connection: Connection, limit: int | None) -> int:
        """Sum the rollup deltas into the rollups and delete them (see storage/rollups.py);
        how many rollup rows changed.
        """
        ...

    # Schema

    #: Alembic alters tables by copying them (its batch mode).
    alters_by_copy: bool
    #: The SQL default that stamps a row with its transaction's id (None: the database's
    #: ids are in commit order already, see storage/events.py).
    transaction_id_default: str | None

    def json_type(self) -> TypeEngine[Any]:
        """The column type of a JSON document."""
        ...

    def serial_type(self) -> TypeEngine[int]:
        """The column type of an integer key the database numbers."""
        ...

    def datetime_binder(self) -> Callable[[Any], Any] | None:
        """How a UTC datetime is bound, where the database keeps it its own way (None: as
        SQLAlchemy binds it).
        """
        ...

    def datetime_reader(self) -> Callable[[Any], Any] | None:
        """How a stored UTC datetime is read back, where `datetime_binder` has one."""
        ...

    def unreadable_json(
        self, connection: Connection, table: str, key: str, column: str
    ) -> list[tuple[Any, str]]:
        """(key, text) of the rows whose JSON `column` the database's JSON functions refuse
        (stored before the JSON policy: migration 0004).
        """
        ...

    def rollup_triggers(self, deleted: str, updated: str, changed: str) -> list[str]:
        """The statements creating the triggers that write rollup deltas (migration 0009):
        `deleted` inserts a deleted job's, `updated` an updated job's when `changed`;
        which of them a trigger writes, the driver's statements do not.
        """
        ...

    def drop_rollup_triggers(self) -> list[str]:
        """The statements dropping what `rollup_triggers` created."""
        ...

    def create_delivery_storage(self) -> list[str]:
        """The statements that let deliveries write less (migration 0017): where the
        database needs more than the tables to record a batch of attempts in one statement,
        and how the outbox's rows are laid out.
        """
        ...

    def drop_delivery_storage(self) -> list[str]:
        """The statements undoing `create_delivery_storage`."""
        ...


_REGISTERED: dict[type[Any], Dialect] = {}


def register(dialect_class: type[SqlalchemyDialect], dialect: Dialect) -> None:
    """Make `dialect` the one of connections whose SQLAlchemy dialect is `dialect_class`."""
    _REGISTERED[dialect_class] = dialect
    _FOUND.clear()


#: The Dialect found for each SQLAlchemy dialect class (asked on every write).
_FOUND: dict[type[Any], Dialect] = {}


def dialect_of(connection: Connection | SqlalchemyDialect) -> Dialect:
    """The registered Dialect of the connection's (or SQLAlchemy dialect's) database."""
    sqlalchemy_dialect = connection.dialect if isinstance(connection, Connection) else connection
    kind = type(sqlalchemy_dialect)
    found = _FOUND.get(kind)
    if found is not None:
        return found
    for cls in kind.__mro__:
        found = _REGISTERED.get(cls)
        if found is not None:
            _FOUND[kind] = found
            return found
    raise LookupError(f"jobpulse has no driver for {kind.__name__}")
