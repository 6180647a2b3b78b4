"""Changes to existing jobs: lock the jobs, let the domain plan each change, write them.

Every change goes through `write_plans`, alone or with others of a writer batch (a lone change
is a batch of one): the jobs are locked (FOR UPDATE on PostgreSQL; SQLite has one writer) in
id order, each request is planned in queue order by the pure rules (several requests for one
job see each other's changes), then the changed jobs are written, each guarded by the status
its plan expected (see storage/changes.py), and the history and outbox rows inserted. A
request for a job the caller may not see, or one its rules refuse, gets its own outcome; the
others commit. A job found in another status than planned fails the batch (the writer then
runs each request alone, and that one fails on its own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from jobpulse.domain import Actor, Job, JobEvent, JobStatus, OutboxMessage, Plan
from jobpulse.errors import JobPulseError, NotFoundError
from jobpulse.storage.changes import JobWrite, update_jobs
from jobpulse.storage.dialects import Dialect, dialect_of
from jobpulse.storage.outbox import insert_messages
from jobpulse.storage.repository import is_job_id, sees, to_job


class ChangedWhileLockedError(RuntimeError):
    """A job was not in the status its change was planned for: a writer outside jobpulse
    changed it under the lock, or the plan did not expect the job's status.

    Not a JobPulseError: it comes after writes, so it undoes the batch (see group_commit).
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

    @staticmethod
    def is_shared_on(dialect: Dialect) -> bool:
        """Whether transitions of one batch share their statements on `dialect`."""
        return dialect.shares_transitions

    @staticmethod
    def run_together(
        connection: Connection, requests: Sequence[Transition]
    ) -> list[tuple[bool, Any]]:
        """Run `requests` in the caller's transaction, a few statements for all of them."""
        return write_plans(connection, requests)


def apply_plan(
    connection: Connection, actor: Actor, job_id: str, planner: Callable[[Job], Plan]
) -> tuple[Job, Plan]:
    """Lock the job, plan the change, write it; the job as it now is, and the plan."""
    return Transition(actor, job_id, planner)(connection)


@dataclass(slots=True)
class _Planned:
    """One locked job through a batch's plans: as locked, as it now is, what changed."""

    locked: Job
    job: Job
    #: The status the first plan for the job expected: the stored job's, if no one else's.
    expected: JobStatus | None = None
    values: dict[str, Any] | None = None

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

    def write(self) -> JobWrite | None:
        if self.values is None or self.expected is None:
            return None
        return JobWrite(self.locked, self.job, self.values, self.expected)


def write_plans(connection: Connection, requests: Sequence[Transition]) -> list[tuple[bool, Any]]:
    """Lock, plan and write `requests` in the caller's transaction; each one's outcome:
    (True, (job as it now is, plan)) or (False, the JobPulseError it gets).
    """
    ids = sorted({request.job_id for request in requests if is_job_id(request.job_id)})
    found = dialect_of(connection).lock_jobs(connection, ids) if ids else []
    planned = {job.id: _Planned(job, job) for job in map(to_job, found)}
    outcomes: list[tuple[bool, Any]] = []
    events: list[JobEvent] = []
    messages: list[OutboxMessage] = []
    for request in requests:
        entry = planned.get(request.job_id)
        if entry is None or not sees(request.actor, entry.job):
            outcomes.append((False, NotFoundError(f"job {request.job_id} not found")))
            continue
        try:
            plan = request.planner(entry.job)
        except JobPulseError as exc:
            outcomes.append((False, exc))
            continue
        entry.apply(plan)
        if plan.event is not None:
            events.append(plan.event)
        messages.extend(plan.outbox)
        outcomes.append((True, (entry.job, plan)))
    writes = [write for entry in planned.values() if (write := entry.write()) is not None]
    if update_jobs(connection, writes, events) != len(writes):
        named = ", ".join(write.locked.id for write in writes)
        raise ChangedWhileLockedError(f"a job of {named} changed while locked")
    insert_messages(connection, messages)
    return outcomes
