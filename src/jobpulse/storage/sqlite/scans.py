"""SQLite's long reads: threads at a lower CPU priority, each statement under a deadline
(see storage/scans.py for why).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from jobpulse.storage.scans import timed_out

T = TypeVar("T")

#: How much less CPU a long read's thread asks for: a nice value (Linux gives each thread
#: its own). The writer and the event loop then have the CPU whenever they want it.
NICENESS = 10
#: SQLite virtual-machine steps between two looks at a statement's deadline (about 10 ms).
DEADLINE_STEPS = 200_000


def lower_priority(niceness: int = NICENESS) -> None:
    """Lower the calling thread's CPU priority by `niceness` (Linux only; else nothing)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)


def within(connection: Connection, query: Callable[[Connection], T], seconds: float) -> T:
    """`query(connection)` on SQLite, its statements interrupted once `seconds` have passed
    (ReadTimeoutError).
    """
    deadline = time.monotonic() + seconds
    driver = connection.connection.driver_connection
    assert driver is not None
    # SQLite asks every DEADLINE_STEPS steps, and stops the statement on a true answer.
    driver.set_progress_handler(lambda: time.monotonic() > deadline, DEADLINE_STEPS)
    try:
        return query(connection)
    except OperationalError:
        if time.monotonic() > deadline:
            raise timed_out(seconds) from None
        raise
    finally:
        driver.set_progress_handler(None, 0)
