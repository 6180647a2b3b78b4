"""Group commit: many callers' write commands run in one transaction, each keeping its own
outcome; a batch that hits a database error runs again one transaction a command, so one
bad request never fails its neighbours. The writers of each database queue into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection

from jobpulse.errors import JobPulseError
from jobpulse.storage.dialects import dialect_of
from jobpulse.storage.failures import translate_error

Command = Callable[[Connection], Any]


@dataclass(slots=True)
class Request:
    command: Command
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    #: Whether it is a change `Traffic` counts (not the server's own upkeep, see `Writer`).
    counted: bool = True


@dataclass(frozen=True, slots=True)
class OnJob:
    """A command that locks one job, `locked_job` (a step, a delete, a batch's poll): in a
    batch of several runs it is locked with the other runs' jobs, in id order, before any
    of them writes (see `_lock_jobs_first`).
    """

    locked_job: str
    command: Command

    def __call__(self, connection: Connection) -> Any:
        return self.command(connection)


def resolve(pairs: list[tuple[Request, bool, Any]]) -> None:
    for request, ok, value in pairs:
        if request.future.done():  # the caller gave up waiting
            continue
        if ok:
            request.future.set_result(value)
        else:
            request.future.set_exception(value)


def _runs(connection: Connection, commands: Sequence[Command]) -> list[list[Command]]:
    """`commands` in runs, in order: neighbours of one kind that can run together, or one
    alone. A command that can has a `run_together(connection, commands)` giving each one's
    outcome, and `is_shared_on(dialect)`, whether that pays on the connection's database
    (see storage/transitions.py, storage/creations.py).
    """
    dialect = dialect_of(connection)
    runs: list[list[Command]] = []
    for command in commands:
        kind = None
        is_shared_on = getattr(command, "is_shared_on", None)
        if is_shared_on is not None and is_shared_on(dialect):
            kind = getattr(command, "run_together", None)
        last = runs[-1] if runs else None
        if kind is not None and last and getattr(last[0], "run_together", None) is kind:
            last.append(command)
        else:
            runs.append([command])
    return runs


class NeedsTransactionError(Exception):
    """The outcome of a command run with no transaction around it that must run again in
    one (see storage/transitions.py): the writer does so at once.
    """


def run_batch(
    connection: Connection,
    commands: Sequence[Command],
    then: Callable[[], Sequence[Command]] | None = None,
) -> list[tuple[bool, Any]]:
    """Run `commands` in one transaction, and after them the commands `then()` gives (changes
    that came in meanwhile); fall back to one transaction each on an error. The outcomes are
    those of `commands`, then of `then()`'s.

    Commands that write in one statement, where the database says a statement alone may be
    its own transaction, run without one; those whose outcome is `NeedsTransactionError`
    then run again, in a transaction. A JobPulseError from a command goes back to its caller
    without undoing the batch: commands raise those before they write anything.
    """
    if then is not None or not _is_one_statement(connection, commands):
        return _in_transaction(connection, commands, then)
    try:
        with _autocommit(connection):
            outcomes = _run_all(connection, commands)
    except Exception as exc:  # the one statement, all or nothing, wrote nothing
        return _each_alone(connection, commands, exc)
    again = [
        n
        for n, (ok, value) in enumerate(outcomes)
        if not ok and type(value) is NeedsTransactionError
    ]
    if again:
        redone = _in_transaction(connection, [commands[n] for n in again])
        for n, outcome in zip(again, redone, strict=True):
            outcomes[n] = outcome
    return outcomes


def _in_transaction(
    connection: Connection,
    commands: Sequence[Command],
    then: Callable[[], Sequence[Command]] | None = None,
) -> list[tuple[bool, Any]]:
    ran = list(commands)
    try:
        outcomes: list[tuple[bool, Any]] = []
        with connection.begin():
            outcomes += _run_all(connection, commands)
            if then is not None:
                joined = then()
                ran += joined
                outcomes += _run_all(connection, joined)
        return outcomes
    except Exception as exc:
        return _each_alone(connection, ran, exc)


def _each_alone(
    connection: Connection, commands: Sequence[Command], exc: Exception
) -> list[tuple[bool, Any]]:
    """After `exc` undid `commands`: each run again on its own (its outcome `exc` if alone)."""
    # Whatever the failure left on the connection (an open cursor, a savepoint, a broken
    # socket) goes with it: the next statement reconnects and starts clean.
    connection.invalidate()
    if len(commands) == 1:
        return [(False, translate_error(exc))]
    return [run_batch(connection, [command])[0] for command in commands]


def _is_one_statement(connection: Connection, commands: Sequence[Command]) -> bool:
    """`commands` run together write in one statement, which on this database may be a
    transaction of its own. A kind that can says so with `is_one_statement(commands)` (see
    storage/creations.py, storage/transitions.py), a command alone with
    `is_one_statement_alone(dialect)` (see attempts.Recording).
    """
    dialect = dialect_of(connection)
    if not dialect.commits_one_statement_alone:
        return False
    is_alone_one_statement = getattr(commands[0], "is_one_statement_alone", None)
    if len(commands) == 1 and is_alone_one_statement is not None:
        return bool(is_alone_one_statement(dialect))
    is_one_statement = getattr(commands[0], "is_one_statement", None)
    if is_one_statement is None or len(_runs(connection, commands)) > 1:
        return False
    return bool(is_one_statement(commands))


@contextlib.contextmanager
def _autocommit(connection: Connection) -> Iterator[None]:
    """No transaction around the statements run within: each is its own."""
    connection.info[_EACH_ALONE] = True
    try:
        with dialect_of(connection).driver.autocommit(connection):
            yield
    finally:
        connection.info[_EACH_ALONE] = False


#: The key of `Connection.info` saying statements run in `_autocommit`.
_EACH_ALONE = "jobpulse.each_alone"


def commits_each_statement(connection: Connection) -> bool:
    """Whether `connection` runs with no transaction around its statements (`_autocommit`)."""
    return bool(connection.info.get(_EACH_ALONE))


def _run_all(connection: Connection, commands: Sequence[Command]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    runs = _runs(connection, commands)
    if len(runs) > 1:
        _lock_jobs_first(connection, commands)
    for run in runs:
        if len(run) > 1:
            run_together: Any = getattr(run[0], "run_together")  # noqa: B009
            outcomes.extend(run_together(connection, run))
            continue
        try:
            outcomes.append((True, run[0](connection)))
        except (JobPulseError, NeedsTransactionError) as exc:
            outcomes.append((False, exc))
    return outcomes


def _lock_jobs_first(connection: Connection, commands: Sequence[Command]) -> None:
    """Lock at once, in id order, the jobs that `commands` of several runs lock (a command
    that locks a job names it as its `locked_job`). Each run locks its own jobs in id
    order, but a later run's would be waited for while the earlier runs' are held: a
    transaction holding one of those and waiting for a later one's would be a deadlock,
    which costs both a second (deadlock_timeout) where writers wait for each other's rows.
    """
    dialect = dialect_of(connection)
    if not dialect.writers_wait_for_rows:
        return
    ids = {job_id for command in commands if (job_id := getattr(command, "locked_job", None))}
    if len(ids) > 1:
        dialect.lock_jobs(connection, sorted(ids))


#: Seconds after a change was queued during which background work counts the writer as busy.
BUSY_S = 0.5


class Traffic:
    """The writer's load, for background work that makes way for changes (see
    storage/retention.py): changes queued, counted by the event loop that queues them, and
    changes taken, counted by the writer that runs them; each count has one writer.
    """

    def __init__(self) -> None:
        self._queued = 0
        self._taken = 0
        self._last = -BUSY_S

    def queue(self) -> None:
        """A change was queued."""
        self._queued += 1
        self._last = time.monotonic()

    def take(self, number: int) -> None:
        """The writer took `number` changes off its queue."""
        self._taken += number

    def waiting(self) -> bool:
        """A change is queued now."""
        return self._queued > self._taken

    def recent(self) -> bool:
        """A change was queued within the last `BUSY_S` seconds."""
        return time.monotonic() - self._last < BUSY_S


class Writer(Protocol):
    """Runs write commands, committing them in batches. A command not `counted` runs as a
    change does but is left out of `traffic`: the server's own upkeep (claims, sweeps), which
    polls every second or so and would otherwise keep an idle server busy for ever.
    """

    traffic: Traffic

    async def submit(
        self, command: Command, background: bool = False, counted: bool = True
    ) -> Any: ...

    async def close(self) -> None: ...
