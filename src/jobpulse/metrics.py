"""Prometheus metrics, one registry per app: job lifecycle counters and histograms kept as
changes commit, and gauges read from the database when /metrics is scraped. Each replica
exports its own counters; nothing is counted twice within one (only applied changes count).
The workers of one `serve --workers N` export as one replica: with PROMETHEUS_MULTIPROC_DIR
set (`serve` sets it for its workers), prometheus_client keeps each worker's values in that
folder and a scrape of any worker sums the counters and histograms of all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from jobpulse.domain import Job, JobStatus, Plan

#: The OpenTelemetry GenAI time-to-first-token buckets, extended to five minutes.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
M = TypeVar("M", bound=MetricWrapperBase)
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)
#: The label every job type past the first `job_types_max` is counted under.
OTHER = "other"
#: The folder where the workers of one `serve` keep their values (prometheus_client's name).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Across workers, a gauge read from the database shows the last worker's reading (every
#: worker reads the same database), and the event-loop lag the worst of the live workers'.
FROM_DATABASE: Final = "mostrecent"
WORST_WORKER: Final = "livemax"


@dataclass(frozen=True, slots=True)
class Gauges:
    """The whole-database figures the gauges show."""

    active: dict[JobStatus, int]
    stuck: int
    outbox_pending: int
    batches: int


class Metrics:
    """The jobpulse metrics of one process."""

    def __init__(self, job_types_max: int = 100) -> None:
        #: Job types are chosen by users: the first `job_types_max` seen are labels of their
        #: own, the rest share OTHER, so that no caller can grow the series without bound.
        self._job_types_max = job_types_max
        self._job_types: set[str] = set()
        #: Labelled children by metric and label values: `labels()` checks and converts its
        #: values and takes a lock each call, a few microseconds every request.
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_created = Counter(
            "jobpulse_jobs_created", "Jobs created.", ["job_type"], registry=r
        )
        self.transitions = Counter(
            "jobpulse_job_transitions",
            "Applied status transitions.",
            ["job_type", "from_status", "to_status"],
            registry=r,
        )
        self.ttft = Histogram(
            "jobpulse_job_ttft_seconds",
            "Time to first token.",
            ["job_type"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "jobpulse_job_duration_seconds",
            "Total duration of ended jobs.",
            ["job_type", "status"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.callbacks = Counter(
            "jobpulse_callbacks",
            "Webhook delivery attempts, by outcome.",
            ["event_type", "outcome"],
            registry=r,
        )
        self.callback_latency = Histogram(
            "jobpulse_callback_latency_seconds",
            "Time one delivery attempt took.",
            buckets=CALLBACK_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "jobpulse_jobs_active",
            "Jobs not yet ended, by status.",
            ["status"],
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.stuck = Gauge(
            "jobpulse_jobs_stuck",
            "Running jobs flagged stuck.",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.outbox_pending = Gauge(
            "jobpulse_outbox_pending",
            "Webhooks waiting to be delivered.",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.http_duration = Histogram(
            "jobpulse_http_request_duration_seconds",
            "HTTP requests served, by route and status.",
            ["method", "route", "status"],
            buckets=CALLBACK_BUCKETS,
            registry=r,
        )
        self.pruned_rows = Counter(
            "jobpulse_pruned", "Rows removed by retention, by kind.", ["kind"], registry=r
        )
        self.batch_polls = Counter(
            "jobpulse_batch_polls",
            "LLM batch polls, by provider and outcome.",
            ["provider", "outcome"],
            registry=r,
        )
        self.batch_poll_latency = Histogram(
            "jobpulse_batch_poll_seconds",
            "Time one LLM batch poll took at its provider.",
            ["provider"],
            buckets=CALLBACK_BUCKETS,
            registry=r,
        )
        self.batches_in_flight = Gauge(
            "jobpulse_batches_in_flight",
            "LLM batches followed at their providers.",
            registry=r,
            multiprocess_mode=FROM_DATABASE,
        )
        self.llm_tokens = Counter(
            "jobpulse_llm_tokens",
            "Tokens of recorded LLM calls, by provider, model and kind.",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.llm_cost = Counter(
            "jobpulse_llm_cost_usd",
            "Known cost in USD of recorded LLM calls, by provider and model.",
            ["provider", "model"],
            registry=r,
        )
        #: Providers and models are chosen by callers too: bounded as job types are.
        self._models: set[tuple[str, str]] = set()
        self.loop_lag = Gauge(
            "jobpulse_event_loop_lag_seconds",
            "Last measured event-loop lag (of the worst worker).",
            registry=r,
            multiprocess_mode=WORST_WORKER,
        )

    def child(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, made once."""
        found = self._children.get((metric, labels))
        if found is None:
            found = self._children[(metric, labels)] = metric.labels(*labels)
        return found  # type: ignore[return-value]

    def job_type(self, job_type: str) -> str:
        """The label `job_type` is counted under."""
        if job_type in self._job_types:
            return job_type
        if len(self._job_types) < self._job_types_max:
            self._job_types.add(job_type)
            return job_type
        return OTHER

    def model(self, provider: str, model: str) -> tuple[str, str]:
        """The (provider, model) labels a model is counted under (OTHER past the bound)."""
        key = (provider, model)
        if key in self._models:
            return key
        if len(self._models) < self._job_types_max:
            self._models.add(key)
            return key
        return (OTHER, OTHER)

    def llm_call(
        self, provider: str, model: str, tokens: dict[str, int], cost_usd: float | None
    ) -> None:
        """Count one recorded LLM call: its tokens by kind (`input_tokens` counted as
        kind `input`, ...), and its cost when known.
        """
        labels = self.model(provider, model)
        for kind, number in tokens.items():
            if number:
                self.child(self.llm_tokens, *labels, kind.removesuffix("_tokens")).inc(number)
        if cost_usd:
            self.child(self.llm_cost, *labels).inc(cost_usd)

    def request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        """Observe one HTTP request."""
        self.child(self.http_duration, method, route, str(status)).observe(seconds)

    def created(self, job: Job) -> None:
        """Count a new job."""
        self.child(self.jobs_created, self.job_type(job.job_type)).inc()

    def applied(self, job: Job, plan: Plan) -> None:
        """Count what a committed plan did; `job` is the job after it."""
        values = plan.values
        event = plan.event
        job_type = self.job_type(job.job_type)
        if event is not None and event.applied and "status" in values and event.from_status:
            labels = (job_type, event.from_status.value, job.status.value)
            self.child(self.transitions, *labels).inc()
            if plan.ends_job and job.total_duration_ns is not None:
                seconds = job.total_duration_ns / 1e9
                self.child(self.duration, job_type, job.status.value).observe(seconds)
        if values.get("ttft_ns") is not None:
            self.child(self.ttft, job_type).observe(values["ttft_ns"] / 1e9)

    def pruned(self, removed: dict[str, int]) -> None:
        """Count the rows one prune batch removed."""
        for kind, number in removed.items():
            if number:
                self.child(self.pruned_rows, kind).inc(number)

    def batch_polled(self, provider: str, outcome: str, seconds: float) -> None:
        """Count one LLM batch poll."""
        self.child(self.batch_polls, provider, outcome).inc()
        self.child(self.batch_poll_latency, provider).observe(seconds)

    def set_gauges(self, figures: Gauges) -> None:
        """The gauges read from the database at scrape time."""
        for status, number in figures.active.items():
            self.active.labels(status.value).set(number)
        self.stuck.set(figures.stuck)
        self.outbox_pending.set(figures.outbox_pending)
        self.batches_in_flight.set(figures.batches)

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's metrics, or those of every worker of
        its `serve` (PROMETHEUS_MULTIPROC_DIR set).
        """
        if not os.environ.get(MULTIPROCESS_DIR):
            return generate_latest(self.registry)
        workers = CollectorRegistry()
        MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
        return generate_latest(workers)
