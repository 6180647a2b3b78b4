"""A simulated workload for `jobpulse demo`: several job types, plausible timings, failures
with stop reasons, cancellations, and a few runs that stop heartbeating.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from jobpulse.client import JobPulse


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


def _pause(median_s: float, speed: float, rng: random.Random) -> float:
    """A log-normal wait around `median_s`, as latencies are."""
    return min(rng.lognormvariate(0, 0.6) * median_s / speed, 30.0)


def _one(client: JobPulse, number: int, speed: float) -> str:
    rng = random.Random(number)
    profile = rng.choice(PROFILES)
    fate = rng.random()
    job = client.create_job(
        job_type=profile.job_type,
        status="pending",
        metadata={"source_id": f"demo-{number % 5}", "attempt": 1},
        heartbeat_timeout_s=max(2.0, 10.0 / speed),
    )
    time.sleep(_pause(0.2, speed, rng))
    client.update_job(job.id, status="running")
    time.sleep(_pause(profile.ttft_s, speed, rng))
    client.first_token(job.id)
    if fate < 0.04:
        return "silent"  # stops heartbeating: left running for the sweeper to find
    time.sleep(_pause(profile.duration_s, speed, rng) / 2)
    client.heartbeat(job.id, {"progress": 0.5})
    time.sleep(_pause(profile.duration_s, speed, rng) / 2)
    if fate < 0.10:
        client.cancel_job(job.id, reason="user cancelled")
        return "cancelled"
    if fate < 0.22:
        client.update_job(job.id, stop_reason=rng.choice(FAILURES))
        return "failed"
    client.update_job(job.id, stop_reason="end_turn", metadata={"tokens": rng.randint(50, 4000)})
    return "completed"


def run_demo(client: JobPulse, jobs: int, speed: float) -> Counter[str]:
    """Run `jobs` simulated jobs, eight at a time; how many ended which way."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(lambda n: _one(client, n, speed), range(jobs)))
