"""Changes to existing jobs: read the jobs, let the domain plan each change, write them.

Every change goes through `write_plans`, alone or with others of a writer batch (a lone change
is a batch of one): the jobs are read in id order, each request is planned in queue order by
the pure rules (several requests for one job see each other's changes), then the changed jobs
are written, each where it is still as read (the version of its row on PostgreSQL; SQLite's
one writer holds every job), with the history and outbox rows of the jobs written. A request
for a job the caller may not see, or one its rules refuse, gets its own outcome; the others
commit.

On PostgreSQL a writer batch of transitions runs with no transaction around it: the jobs are
read with no lock and written in one statement, which commits alone. The requests of a job
another writer changed in between are then run again in a transaction, which reads the jobs
locked (see storage/group_commit.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from jobpulse.domain import Actor, Job, JobEvent, JobStatus, Plan
from jobpulse.errors import JobPulseError, NotFoundError
from jobpulse.storage.changes import JobWrite, Queued, update_jobs
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.group_commit import NeedsTransactionError, commits_each_statement
from jobpulse.storage.recent import RecentJobs, recent_jobs
from jobpulse.storage.repository import is_job_id, sees, to_job


class ChangedWhileLockedError(RuntimeError):
    """A job was not as its change was planned for though locked: a writer outside jobpulse
    changed it in the same transaction, or the plan did not expect the job's status.

    Not a JobPulseError: it undoes the batch (see group_commit).
    """


@dataclass(frozen=True, slots=True)
class Transition:
    """A planned change of one job, which a writer batch may run with others."""

    actor: Actor
    job_id: str
    planner: Callable[[Job], Plan]

    def __call__(self, connection: Connection) -> tuple[Job, Plan]:
        """Alone: the job as it now is, and the plan (see `write_plans`)."""
        [(ok, outcome)] = write_plans(connection, [self])
        if not ok:
            raise outcome
        return outcome  # type: ignore[no-any-return]

    @property
    def locked_job(self) -> str | None:
        """The job it locks in a transaction (see group_commit): none for an id no job has."""
        return self.job_id if is_job_id(self.job_id) else None

    @staticmethod
    def is_shared_on(dialect: Dialect) -> bool:
        """Whether transitions of one batch share their statements on `dialect`."""
        return dialect.shares_transitions

    @staticmethod
    def is_one_statement(requests: Sequence[Transition]) -> bool:
        """`requests` write in one statement (their read changes nothing)."""
        return True

    @staticmethod
    def run_together(
        connection: Connection, requests: Sequence[Transition]
    ) -> list[tuple[bool, Any]]:
        """Run `requests` in the caller's transaction, a few statements for all of them."""
        return write_plans(connection, requests)


def apply_plan(
    connection: Connection, actor: Actor, job_id: str, planner: Callable[[Job], Plan]
) -> tuple[Job, Plan]:
    """Read the job, plan the change, write it; the job as it now is, and the plan."""
    return Transition(actor, job_id, planner)(connection)


@dataclass(slots=True)
class _Planned:
    """One job read for a round's plans: as read, as it now is, what changed, and the
    outcomes of its requests (by their index in the batch), final once it is written.
    """

    locked: Job
    job: Job
    version: Any
    #: Whether the job is a copy this process kept of it, rather than read.
    from_copy: bool = False
    #: The status the first plan for the job expected: the stored job's, if no one else's.
    expected: JobStatus | None = None
    values: dict[str, Any] | None = None
    outcomes: list[tuple[int, tuple[bool, Any]]] = field(default_factory=list)

    def apply(self, plan: Plan) -> None:
        if plan.expected != self.job.status:
            raise ChangedWhileLockedError(
                f"job {self.job.id} is {self.job.status.value}, not {plan.expected.value}"
            )
        if self.expected is None:
            self.expected = plan.expected
        if plan.values:
            self.job = self.job.changed(plan.values)
            self.values = (self.values or {}) | plan.values

    @property
    def unchecked(self) -> bool:
        """Planned from a copy that no write of it will check (refused, or no change)."""
        return self.from_copy and self.values is None

    def write(self) -> JobWrite | None:
        if self.values is None or self.expected is None:
            return None
        return JobWrite(self.locked, self.job, self.values, self.expected, self.version)


def write_plans(connection: Connection, requests: Sequence[Transition]) -> list[tuple[bool, Any]]:
    """Read, plan and write `requests`; each one's outcome: (True, (job as it now is, plan)),
    (False, the JobPulseError it gets), or with no transaction around it (False,
    NeedsTransactionError) for the requests of a job another writer changed between the
    read and the write.

    In a transaction the jobs are read locked; one changed all the same (a writer outside
    jobpulse, in the same transaction) is read and planned again, once.
    """
    outcomes: list[tuple[bool, Any]] = [(False, None)] * len(requests)
    locked = not commits_each_statement(connection)
    kept = recent_jobs(connection)
    waiting, stale = _write_round(connection, requests, range(len(requests)), outcomes, kept)
    if stale:  # planned from copies another writer's change outdated: read those anew
        again, _ = _write_round(connection, requests, stale, outcomes, kept)
        waiting = sorted({*waiting} - {*stale} | {*again})
    if waiting and not locked:
        return _ended(outcomes, waiting, NeedsTransactionError())
    if waiting and _write_round(connection, requests, waiting, outcomes, kept)[0]:
        named = ", ".join(sorted({requests[index].job_id for index in waiting}))
        raise ChangedWhileLockedError(f"a job of {named} kept changing while locked")
    return outcomes


def _ended(
    outcomes: list[tuple[bool, Any]], waiting: Sequence[int], error: Exception
) -> list[tuple[bool, Any]]:
    for index in waiting:
        outcomes[index] = (False, error)
    return outcomes


def _write_round(
    connection: Connection,
    requests: Sequence[Transition],
    waiting: Sequence[int],
    outcomes: list[tuple[bool, Any]],
    kept: RecentJobs,
) -> tuple[list[int], list[int]]:
    """Read, plan and write the requests `waiting` (by index), setting their `outcomes`;
    those of jobs another writer changed since the read are left to plan again: their
    indices, and of those the ones planned from a copy `kept` (not read).

    In a transaction the jobs are read locked. With no transaction around it the copies
    `kept` of the jobs this process wrote last stand for them, and each job written goes
    there with its new version (see storage/recent.py).
    """
    ids = sorted({job_id for index in waiting if is_job_id(job_id := requests[index].job_id)})
    locked = not commits_each_statement(connection)
    planned = _read(connection, ids, locked, kept)
    events: list[JobEvent] = []
    messages: list[Queued] = []
    for index in waiting:
        request = requests[index]
        entry = planned.get(request.job_id)
        if entry is None or not sees(request.actor, entry.job):
            outcomes[index] = (False, NotFoundError(f"job {request.job_id} not found"))
            continue
        try:
            plan = request.planner(entry.job)
        except JobPulseError as exc:
            entry.outcomes.append((index, (False, exc)))
            continue
        entry.apply(plan)
        if plan.event is not None:
            events.append(plan.event)
        messages.extend(Queued(entry.job.id, message) for message in plan.outbox)
        entry.outcomes.append((index, (True, (entry.job, plan))))
    writes = [write for entry in planned.values() if (write := entry.write()) is not None]
    unchecked = {job_id for job_id, entry in planned.items() if entry.unchecked}
    if unchecked:  # their refusals are not recorded: they are planned again, from a read
        events = [event for event in events if event.job_id not in unchecked]
        messages = [queued for queued in messages if queued.change_of not in unchecked]
    written = update_jobs(connection, writes, events, messages)
    return _settle(planned, written, outcomes, kept, keeping=not locked)


def _read(
    connection: Connection, ids: Sequence[str], locked: bool, kept: RecentJobs
) -> dict[str, _Planned]:
    """The jobs of `ids` that exist, to plan from: read (`locked` or not), or with no lock
    the copies `kept` of those this process wrote last.
    """
    planned: dict[str, _Planned] = {}
    if not locked:
        for job_id in ids:
            if (copy := kept.get(job_id)) is not None:
                planned[job_id] = _Planned(copy[0], copy[0], copy[1], from_copy=True)
        ids = [job_id for job_id in ids if job_id not in planned]
    for row in dialect_of(connection).read_jobs(connection, ids, locked) if ids else []:
        job = to_job(row[:-1])
        planned[job.id] = _Planned(job, job, row[-1])
    return planned


def _settle(
    planned: dict[str, _Planned],
    written: dict[str, Any],
    outcomes: list[tuple[bool, Any]],
    kept: RecentJobs,
    keeping: bool,
) -> tuple[list[int], list[int]]:
    """Set the outcomes of the requests of the jobs `written` and of those refused or left
    as read; the indices of the others, to plan again, and of those the ones planned from a
    copy. The jobs written are `kept` with their new versions when `keeping` (each written
    by a statement alone: in a transaction, a row's version is that of all its statements).
    """
    again: list[int] = []
    stale: list[int] = []
    for entry in planned.values():
        job_id = entry.job.id
        if job_id in written:
            version = written[job_id]
            if keeping and version is not None:
                kept.keep(entry.job, version)
            else:
                kept.forget((job_id,))
        elif entry.values is not None or entry.unchecked:
            # Changed since it was read; or refused, or left as it was, by a copy no write
            # has checked: planned again from the job as it is.
            kept.forget((job_id,))
            indices = [index for index, _ in entry.outcomes]
            again += indices
            if entry.from_copy:
                stale += indices
            continue
        for index, outcome in entry.outcomes:
            outcomes[index] = outcome
    return sorted(again), sorted(stale)
