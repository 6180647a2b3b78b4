"""One `serve` per SQLite file: a second is refused at start, with the first one's pid.

Two servers on one file would each run a single writer and the background loops that
assume they are alone on it; replicas belong on PostgreSQL. The claim is an exclusive
`flock` on a file of our own beside the database (`<database>.serve.lock`), never on
SQLite's files, whose POSIX locks a close of any descriptor would drop. The kernel lets it
go when the process ends, `kill -9` included; the file itself stays.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from jobpulse.errors import AlreadyServedError


def lock_path(database: str) -> str:
    """The file whose lock claims `database` for one `serve`."""
    return f"{database}.serve.lock"


@contextlib.contextmanager
def claimed(database: str) -> Iterator[None]:
    """Held while this process serves the SQLite file `database`; AlreadyServedError if
    another process does.
    """
    with open(lock_path(database), "a+", encoding="ascii") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise AlreadyServedError(
                f"another jobpulse serve (pid {holder}) is already serving {database}; "
                "one serve per SQLite file (run replicas on PostgreSQL)"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
