"""A simulated workload for `jobpulse demo`: several job types, plausible timings, steps,
LLM calls with their tokens and cost, failures with stop reasons, cancellations, a few runs
that stop heartbeating, callbacks to a receiver it runs and LLM batches at a provider it
runs. It outlives what happens to its jobs elsewhere (cancelled from the dashboard, deleted)
and a restart of the server.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from jobpulse.calls import error_of
from jobpulse.client import JobPulse
from jobpulse.demo.calls import CALLING, llm_call
from jobpulse.demo.provider import Provider
from jobpulse.demo.receiver import Receiver
from jobpulse.errors import (
    InvalidTransitionError,
    JobPulseError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)

T = TypeVar("T")
#: How long a call waits for a server that went away (restarting) before giving the job up.
PATIENCE_S = 60.0


@dataclass(frozen=True)
class Profile:
    """How one kind of job behaves: median seconds to first token and to the end."""

    job_type: str
    ttft_s: float
    duration_s: float


PROFILES = (
    Profile("agent_run", 0.8, 6.0),
    Profile("llm_request", 0.4, 2.0),
    Profile("file_processing", 0.2, 4.0),
    Profile("embedding_batch", 0.1, 3.0),
)
FAILURES = ("llm_api_error", "max_tokens_exceeded", "invalid_tool_call", "error")


@dataclass
class Demo:
    """What the jobs share: the server, the receiver, and what happened."""

    client: JobPulse
    http: httpx.Client
    speed: float
    receiver: Receiver | None
    steps: int = 0
    #: LLM calls recorded, and their tokens.
    calls: int = 0
    tokens: int = 0
    #: Why callbacks were left out (the server refused the receiver's address), if they were.
    no_callbacks: str | None = None
    notes: list[str] = field(default_factory=list)

    def patient(self, call: Callable[[], T]) -> T:
        """`call`, retried while the server is away or unavailable (a restart)."""
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                return call()
            except (httpx.TransportError, UnavailableError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def step(self, job_id: str, number: int) -> None:
        answer = self.patient(
            lambda: self.http.post(
                f"/v1/jobs/{job_id}/steps",
                json={"status": "success", "metadata": {"step": number}},
            )
        )
        if answer.status_code >= 400:
            raise error_of(answer)
        self.steps += 1

    def call(self, job_id: str, profile: Profile, rng: random.Random) -> None:
        """Record one LLM call of the job, if its type is one that calls models."""
        if profile.job_type not in CALLING:
            return
        record = llm_call(rng, profile.ttft_s / self.speed)
        self.patient(lambda: self.client.record_usage(job_id, **record))
        self.calls += 1
        self.tokens += sum(v for k, v in record.items() if k.endswith("_tokens"))

    def create(self, **fields: Any) -> Any:
        """A job, with a callback to the receiver when the server accepts its address."""
        if self.receiver is not None and self.no_callbacks is None:
            try:
                return self.patient(
                    lambda: self.client.create_job(callback_url=self.receiver.url, **fields)  # type: ignore[union-attr]
                )
            except ValidationError as exc:
                self.no_callbacks = exc.message
        return self.patient(lambda: self.client.create_job(**fields))


def _pause(median_s: float, speed: float, rng: random.Random) -> float:
    """A log-normal wait around `median_s`, as latencies are."""
    return min(rng.lognormvariate(0, 0.6) * median_s / speed, 30.0)


def _journey(demo: Demo, number: int) -> str:
    rng = random.Random(number)
    profile = rng.choice(PROFILES)
    fate = rng.random()
    client, speed, patient = demo.client, demo.speed, demo.patient
    fields = {
        "job_type": profile.job_type,
        "status": "pending",
        "metadata": {"source_id": f"demo-{number % 5}", "attempt": 1},
        "heartbeat_timeout_s": max(2.0, 10.0 / speed),
    }
    job = demo.create(**fields) if number % 3 == 0 else patient(lambda: client.create_job(**fields))
    time.sleep(_pause(0.2, speed, rng))
    patient(lambda: client.update_job(job.id, status="running"))
    time.sleep(_pause(profile.ttft_s, speed, rng))
    patient(lambda: client.first_token(job.id))
    demo.call(job.id, profile, rng)
    if fate < 0.04:
        return "silent"  # stops heartbeating: left running for the sweeper to find
    for step in range(1, rng.randint(2, 4)):
        time.sleep(_pause(profile.duration_s, speed, rng) / 3)
        demo.step(job.id, step)
        if profile.job_type == "agent_run":  # an agent's step: another model call
            demo.call(job.id, profile, rng)
        progress = {"progress": round(step / 4, 2)}
        patient(lambda: client.heartbeat(job.id, progress))  # noqa: B023 (called at once)
    time.sleep(_pause(profile.duration_s, speed, rng) / 3)
    if fate < 0.10:
        patient(lambda: client.cancel_job(job.id, reason="user cancelled"))
        return "cancelled"
    if fate < 0.22:
        patient(lambda: client.update_job(job.id, stop_reason=rng.choice(FAILURES)))
        return "failed"
    tokens = rng.randint(50, 4000)
    patient(lambda: client.update_job(job.id, stop_reason="end_turn", metadata={"tokens": tokens}))
    return "completed"


def _one(demo: Demo, number: int) -> str:
    """One job's journey, however it ends, in a word or two for the summary."""
    try:
        return _journey(demo, number)
    except InvalidTransitionError:
        return "ended elsewhere"  # cancelled from the dashboard, expired by the sweeper
    except NotFoundError:
        return "deleted elsewhere"
    except (httpx.TransportError, JobPulseError):
        return "lost"  # the server stayed away longer than PATIENCE_S


def _batches(demo: Demo, provider: Provider, count: int) -> list[str]:
    """Start `count` batches at the provider and follow each as an llm_batch job."""
    ids = []
    for number in range(count):
        batch_id = f"msgbatch_demo_{number}_{secrets.token_hex(6)}"
        provider.add(batch_id, requests=40 + 20 * number)
        job = demo.patient(
            lambda batch_id=batch_id: demo.client.track_batch(  # type: ignore[misc]
                "anthropic", batch_id, metadata={"source_id": "demo-batches"}
            )
        )
        ids.append(job.id)
    return ids


@dataclass
class Summary:
    """How the demo's jobs ended, and what else it made."""

    outcomes: Counter[str]
    steps: int
    #: LLM calls recorded, and their tokens.
    calls: tuple[int, int]
    callbacks: Counter[str]
    batches: Counter[str]
    notes: list[str]

    def lines(self) -> list[str]:
        shown = [f"{outcome:>17}: {number}" for outcome, number in sorted(self.outcomes.items())]
        shown.append(f"{'steps':>17}: {self.steps} recorded")
        calls, tokens = self.calls
        shown.append(f"{'LLM calls':>17}: {calls} recorded ({tokens:,} tokens)")
        received = ", ".join(f"{kind} {n}" for kind, n in sorted(self.callbacks.items()))
        shown.append(f"{'callbacks':>17}: {sum(self.callbacks.values())} received ({received})")
        ended = ", ".join(f"{status} {n}" for status, n in sorted(self.batches.items()))
        shown.append(f"{'batches':>17}: {sum(self.batches.values())} made ({ended})")
        return shown + self.notes


def _settle(demo: Demo, provider: Provider, job_ids: list[str], wait_s: float) -> Counter[str]:
    """Wait for the batches' jobs to end (while the server polls the provider); cancel the
    rest, so that no job is left following a provider that is going away.
    """
    deadline = time.monotonic() + wait_s
    ended: Counter[str] = Counter()
    for job_id in job_ids:
        job = demo.patient(lambda job_id=job_id: demo.client.get_job(job_id))  # type: ignore[misc]
        while job.status in ("created", "pending", "running") and time.monotonic() < deadline:
            if not provider.polls:
                break  # the server does not poll this provider: no use waiting
            time.sleep(0.5)
            job = demo.patient(lambda job_id=job_id: demo.client.get_job(job_id))  # type: ignore[misc]
        if job.status in ("created", "pending", "running"):
            try:
                job = demo.client.cancel_job(job_id, reason="the demo ended before its batch")
            except InvalidTransitionError:
                job = demo.client.get_job(job_id)
        ended[job.status] += 1
    if job_ids and not provider.polls:
        demo.notes.append(
            "The server never polled the demo's batch provider, so its batches were cancelled. "
            f"Serve with JOBPULSE_ANTHROPIC_BASE_URL={provider.base_url} ANTHROPIC_API_KEY=demo "
            "JOBPULSE_BATCH_POLL_INTERVAL_S=2 (and --provider-port) to watch them progress."
        )
    return ended


def run_demo(
    url: str,
    key: str,
    jobs: int,
    speed: float,
    *,
    batches: int = 3,
    provider_port: int = 0,
    callbacks: bool = True,
) -> Summary:
    """Run `jobs` simulated jobs, eight at a time, and `batches` LLM batches; what happened."""
    receiver = Receiver() if callbacks else None
    duration_s = max(5.0, 40.0 / speed)
    provider = Provider(provider_port, duration_s)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with JobPulse(url, key) as client, httpx.Client(base_url=url, headers=headers) as http:
            demo = Demo(client, http, speed, receiver)
            batch_jobs = _batches(demo, provider, batches)
            with ThreadPoolExecutor(max_workers=8) as pool:
                outcomes = Counter(pool.map(lambda n: _one(demo, n), range(jobs)))
            ended = _settle(demo, provider, batch_jobs, wait_s=duration_s * 2)
            if demo.no_callbacks:
                demo.notes.append(
                    f"No callbacks: the server refused the receiver's address "
                    f"({demo.no_callbacks}); serve with JOBPULSE_WEBHOOK_ALLOW_PRIVATE=true."
                )
            elif receiver is not None:
                time.sleep(min(2.0, 10.0 / speed))  # the last deliveries' way back
            received = receiver.received.copy() if receiver else Counter[str]()
            calls = (demo.calls, demo.tokens)
            return Summary(outcomes, demo.steps, calls, received, ended, demo.notes)
    finally:
        provider.close()
        if receiver is not None:
            receiver.close()
