"""SQLite's write-ahead log copied back into the database by a thread of its own.

No commit pays for a checkpoint: the writer's connection has `wal_autocheckpoint=0`, and a
thread runs `PRAGMA wal_checkpoint(PASSIVE)`, which neither waits for the writer nor holds
it up, once about `frames` frames wait in the log (SQLite's own autocheckpoint threshold:
copying whatever the log held every 100 ms copied hot pages over and over, and slowed a
prune). What waits is learnt only from SQLite's answers to those
checkpoints and from a stat of the log, which takes no lock: nothing here opens SQLite's
files (closing any descriptor of the `-shm` file drops every lock the process's own
connections hold on it, and another process may then delete the log under them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine

logger = logging.getLogger("jobpulse.storage")

#: Seconds between two looks at the log.
TICK_S = 0.1
#: Seconds the log may hold frames not copied back, whatever their number.
MAX_WAIT_S = 2.0
#: Bytes a frame adds to its page in the log (sqlite.org/fileformat2.html#walformat).
FRAME_HEADER_BYTES = 24


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one checkpoint reported, with the log's stat taken just before it."""

    #: Monotonic seconds.
    at: float
    #: Frames in the log, and of them those now copied back into the database.
    frames: int
    copied: int
    #: The log's size in bytes and modification time, from `os.stat`.
    size: int
    modified_ns: int


class Schedule:
    """When the next checkpoint is due: once about `threshold` frames wait in the log, or
    frames have waited `MAX_WAIT_S`. Frames written since the last checkpoint are estimated
    from the rate the checkpoints measured and from the log's growth past its size then.
    """

    def __init__(self, threshold: int, frame_bytes: int) -> None:
        self.threshold = threshold
        self.frame_bytes = frame_bytes
        self.last: Checkpoint | None = None
        #: Frames written a second, as measured between the last checkpoints.
        self.rate = 0.0

    def is_due(self, now: float, size: int, modified_ns: int) -> bool:
        """Whether to checkpoint now, given the log's size and modification time now."""
        last = self.last
        if last is None:
            return True
        if (size, modified_ns) == (last.size, last.modified_ns):
            return last.frames > last.copied and now - last.at >= MAX_WAIT_S
        if now - last.at >= MAX_WAIT_S:
            return True
        left = last.frames - last.copied
        grown = max(0, size - last.size) // self.frame_bytes
        written = max(grown, self.rate * (now - last.at))
        return left + written >= self.threshold

    def checkpointed(self, checkpoint: Checkpoint) -> None:
        """Learn from a checkpoint's answer (one SQLite refused, -1, teaches nothing)."""
        if checkpoint.frames < 0:
            return
        last = self.last
        if last is not None and checkpoint.at > last.at:
            # Once every frame is copied back, the next write starts the log over.
            started_over = checkpoint.frames < last.frames or last.copied >= last.frames
            written = checkpoint.frames - (0 if started_over else last.frames)
            rate = written / (checkpoint.at - last.at)
            self.rate = rate if self.rate == 0 else (self.rate + rate) / 2
        self.last = checkpoint


class Checkpointer:
    """The thread that checkpoints one SQLite database when its `Schedule` says so."""

    def __init__(self, engine: Engine, frames: int) -> None:
        self._engine = engine
        self._frames = frames
        self._log = f"{engine.url.database}-wal"
        self._stop = threading.Event()
        self.schedule: Schedule | None = None
        self._thread = threading.Thread(target=self._run, name="jobpulse-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                log = os.stat(self._log)
            except FileNotFoundError:  # no log yet, or the last connection removed it
                continue
            try:
                self._consider(log)
            except Exception as exc:  # the next one will try again
                logger.warning("a checkpoint failed: %s", exc)

    def _consider(self, log: os.stat_result) -> None:
        now = time.monotonic()
        schedule = self.schedule
        if schedule is not None and not schedule.is_due(now, log.st_size, log.st_mtime_ns):
            return
        with self._engine.connect() as connection:
            if schedule is None:
                page = int(connection.exec_driver_sql("PRAGMA page_size").scalar_one())
                schedule = self.schedule = Schedule(self._frames, page + FRAME_HEADER_BYTES)
            row = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        _busy, frames, copied = (int(value) for value in row)
        schedule.checkpointed(Checkpoint(now, frames, copied, log.st_size, log.st_mtime_ns))

    async def close(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        self._engine.dispose()
