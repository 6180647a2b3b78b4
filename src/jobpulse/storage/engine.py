"""The one database, its backend chosen by URL among those the drivers register
(storage/urls.py): reads on a pool, writes through the group-committing writer the driver
(storage/sqlite/, storage/postgres/) opens.

Storage code is written once, as synchronous Core functions of a `Connection`, and each
call crosses to the database once: on SQLite it runs whole in a thread (a pool of reader
threads, one writer thread), on PostgreSQL under `run_sync` on an asyncpg connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from jobpulse.config import Settings
from jobpulse.storage.dialects import Dialect
from jobpulse.storage.failures import translated_errors
from jobpulse.storage.group_commit import OnJob, Traffic, Writer
from jobpulse.storage.scans import Pacer, Reader
from jobpulse.storage.urls import backend_of

if TYPE_CHECKING:
    from jobpulse.storage.sqlite.checkpoints import Checkpointer

T = TypeVar("T")
P = ParamSpec("P")


class Connections(Protocol):
    """What a backend opens for a `Database`: its readers, its writer, what else it runs."""

    @property
    def reader(self) -> Reader:
        """Short reads, on a pool."""
        ...

    @property
    def scanner(self) -> Reader:
        """Long reads, apart (see storage/scans.py)."""
        ...

    @property
    def writer(self) -> Writer:
        """The group-committing writer."""
        ...

    @property
    def checkpointer(self) -> Checkpointer | None:
        """SQLite's checkpoints (None elsewhere)."""
        ...

    def pause(self, seconds: float) -> None:
        """How a paced long read sleeps where it runs (see scans.Pacer)."""
        ...

    def spent(self) -> float:
        """What a paced long read has spent so far, in seconds, as it measures its slices."""
        ...

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """See `Database.listen`."""
        ...

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        ...


class Backend(Protocol):
    """A database backend: what its driver package (storage/sqlite/, storage/postgres/)
    opens and runs for the URLs it registers (storage/urls.py).
    """

    #: How its database spells what differs (storage/dialects.py).
    dialect: Dialect

    def serves(self, parsed: URL) -> bool:
        """Whether it serves the database `parsed` names (its scheme is this backend's)."""
        ...

    def url(self, parsed: URL) -> URL:
        """The SQLAlchemy URL it drives the plain setting `parsed` with (ValidationError for
        one it cannot).
        """
        ...

    def connect(self, settings: Settings) -> Connections:
        """The connections, readers and writer of `settings.database_url`."""
        ...

    def served(self, url: URL, processes: int) -> AbstractContextManager[None]:
        """Held while `serve` serves the database at `url` with `processes` workers."""
        ...

    async def run_in_transaction(self, url: str, command: Callable[[Connection], T]) -> T:
        """Run `command(connection)` once, in a transaction of its own, on a connection made
        for it.
        """
        ...


async def run_in_transaction(
    url: str, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run the sync `command(connection, ...)` once, in a transaction of its own."""

    def run(connection: Connection) -> T:
        return command(connection, *args, **kwargs)

    with translated_errors():
        return await backend_of(url).run_in_transaction(url, run)


class Database:
    """The one database: reads on a pool, writes through the group-committing writer."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        backend = backend_of(self.url)
        #: Other processes hear of what this one commits (PostgreSQL's NOTIFY).
        self.announces = backend.dialect.announces
        self._connections = backend.connect(settings)
        self._reader = self._connections.reader
        self._scanner = self._connections.scanner
        self._writer = self._connections.writer
        #: SQLite's checkpoints (None on PostgreSQL).
        self.checkpointer = self._connections.checkpointer
        self._read_timeout_s = settings.read_timeout_s
        self._read_share = settings.read_share

    async def read(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the sync `query(connection, *args, **kwargs)` on a pooled connection."""
        return await self._reader.run(lambda connection: query(connection, *args, **kwargs))

    async def scan(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `read`, for a read that may be long (a listing, a count, figures): on
        `read_concurrency` connections of its own, stopped past `read_timeout_s`
        (ReadTimeoutError); see storage/scans.py.
        """
        return await self._scanner.run(lambda connection: query(connection, *args, **kwargs))

    async def paced_scan(
        self,
        query: Callable[Concatenate[Connection, Pacer, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like `scan`, for a read in slices that makes way for changes between them: while
        the writer is busy it takes `read_share` of the time, see storage/scans.py's Pacer.
        """

        def paced(connection: Connection) -> T:
            traffic = self._writer.traffic
            pacer = Pacer(
                traffic.recent,
                self._connections.pause,
                self._read_share,
                self._read_timeout_s,
                self._connections.spent,
            )
            return query(connection, pacer, *args, **kwargs)

        return await self._scanner.run(paced)

    async def write(
        self, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run the sync `command(connection, *args, **kwargs)` in the writer's next committed
        batch.
        """
        result: T = await self._writer.submit(
            lambda connection: command(connection, *args, **kwargs)
        )
        return result

    async def write_on(
        self,
        job_id: str,
        command: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like `write`, for a command that locks the job `job_id` and no other: a batch
        that holds it with others locks their jobs at once, in id order, so two writers'
        batches never wait for each other's (see group_commit.OnJob).
        """
        result: T = await self._writer.submit(
            OnJob(job_id, lambda connection: command(connection, *args, **kwargs))
        )
        return result

    async def write_upkeep(
        self, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `write`, for the server's own periodic upkeep (claims of due work, sweeps): it
        commits as a change does, but `traffic` does not count it, so that an idle server's
        polling does not make long reads, prunes and bulk actions give way as to changes.
        """
        result: T = await self._writer.submit(
            lambda connection: command(connection, *args, **kwargs), counted=False
        )
        return result

    async def submit(self, command: Callable[[Connection], T]) -> T:
        """Run `command(connection)` in the writer's next committed batch, as it is: a
        `Together` command may then run with those of its kind beside it.
        """
        result: T = await self._writer.submit(command)
        return result

    @property
    def traffic(self) -> Traffic:
        """The writer's load, for background work to make way for changes."""
        return self._writer.traffic

    async def listen(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """Call `callback` for every notification on `channel` from any process (see
        storage/postgres/listening.py), until cancelled; on SQLite, which has none, return at once.
        """
        await self._connections.listen(channel, callback)

    async def write_background(
        self, command: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `write`, for work that can wait (a prune): it starts only when no change is
        queued, and should make way (return early) when `traffic` says one is; on SQLite the
        changes that came in meanwhile then commit in its transaction.
        """
        result: T = await self._writer.submit(
            lambda connection: command(connection, *args, **kwargs), background=True
        )
        return result

    async def close(self) -> None:
        """Finish queued writes and close every connection."""
        await self._connections.close()


async def close_in_turn(*closes: Callable[[], Awaitable[object]]) -> None:
    """Call each of `closes` in turn, every one even when one before it fails (that error is
    raised at the end): a part left open, such as a thread running an event loop, can crash
    the interpreter as it exits.
    """
    async with AsyncExitStack() as stack:
        for close in reversed(closes):
            stack.push_async_callback(close)
