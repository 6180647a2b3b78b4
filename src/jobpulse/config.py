"""Settings read from the environment (prefix JOBPULSE_); built by whoever needs them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RETRY_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"
#: Seconds a webhook lease outlasts the attempt it covers at the least.
LEASE_MARGIN_S = 5.0


class Settings(BaseSettings):
    """Everything jobpulse can be told from outside."""

    model_config = SettingsConfigDict(
        env_prefix="JOBPULSE_", extra="ignore", populate_by_name=True, env_parse_none_str="none"
    )

    #: `sqlite:///path` (embedded, the default) or `postgresql://user@host/db`.
    database_url: str = "sqlite:///./jobpulse.db"
    #: SQLite's fsync policy. FULL (SQLite's default) never loses a committed transaction;
    #: NORMAL, common with WAL, may lose the last ones on power loss but never corrupts.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: Frames SQLite's write-ahead log holds before a thread of `serve` copies them back into
    #: the database (SQLite's own autocheckpoint threshold, kept off the commits).
    sqlite_checkpoint_frames: int = Field(default=1000, ge=1)
    #: Connections kept for reads (and, on PostgreSQL, for the writers).
    pool_size: int = Field(default=10, ge=1)
    #: Seconds to wait for a PostgreSQL connection (a new one, or a free one from the pool)
    #: before the request is answered 503.
    database_timeout_s: float = Field(default=10.0, gt=0)
    #: Requests committed together by one writer transaction at most.
    write_batch_max: int = Field(default=128, ge=1)
    #: Writer connections on PostgreSQL (SQLite always has exactly one writer).
    postgres_writers: int = Field(default=4, ge=1)

    #: Allocations (net of frees) before the collector of `serve` and `worker` runs. Python's
    #: default (700) had a server with 64 requests in flight collect ~200 times a second,
    #: nearly always for nothing (requests free what they allocate): a tenth of its time.
    gc_threshold: int = Field(default=50_000, ge=1)

    #: Seconds a connection may take to send a request's headers (from opening, or from the
    #: last response); past it the connection is closed.
    header_timeout_s: float = Field(default=10.0, gt=0)
    #: Seconds a response may wait on a client that reads nothing (the connection's buffers
    #: full) before the connection is dropped: a live stream nobody reads ends with it.
    send_timeout_s: float = Field(default=10.0, gt=0)
    #: Seconds an idle keep-alive connection is kept open.
    keep_alive_s: int = Field(default=5, ge=1)
    #: Connections (and requests in flight) one process takes at once; past it, 503.
    max_connections: int = Field(default=1000, ge=1)
    #: Seconds a request's body may take to arrive in all, from the end of its headers; past
    #: it the request is answered 408 and the connection closed.
    body_timeout_s: float = Field(default=10.0, gt=0)
    #: Bytes a request's line and headers may take; past it, 431 and the connection closed.
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    #: Header fields a request may have; past it, 431 and the connection closed.
    max_headers: int = Field(default=100, ge=1)
    #: Connections one peer address may hold at once; past it a new one is answered 429 and
    #: closed. Behind a reverse proxy every client has the proxy's address: raise it there.
    max_connections_per_client: int = Field(default=256, ge=1)
    #: Listings, counts and figures (/v1/jobs, /v1/jobs/count, /v1/stats, the dashboard's)
    #: read at once, per process: on connections (SQLite: threads) of their own, at a lower
    #: CPU priority, so that the writer and the short reads always have theirs.
    read_concurrency: int = Field(default=2, ge=1)
    #: The same for one organization, per process.
    read_organization_concurrency: int = Field(default=1, ge=1)
    #: Seconds such a read waits for its turn; past it, 429 with Retry-After.
    read_wait_s: float = Field(default=2.0, ge=0)
    #: Seconds such a read may run before it is stopped (503 `read_timeout`): PostgreSQL's
    #: statement_timeout on its connections; SQLite interrupts it.
    read_timeout_s: float = Field(default=30.0, gt=0)
    #: The share of the time long reads take while changes are being written: a figures
    #: read (/v1/stats) pauses between its slices (0.33: about twice as long as each took), and
    #: a turn of the read gate rests after its read before the next takes it (twice as long
    #: as the read took; the answer is not held), so that the writes keep the CPU they need;
    #: 1 never pauses.
    read_share: float = Field(default=0.33, gt=0, le=1)

    #: A bearer token /metrics then requires (`Authorization: Bearer <token>`); open without.
    metrics_token: str | None = None
    #: Distinct job types labelled in the metrics, per process; the rest are counted as `other`.
    metrics_job_types_max: int = Field(default=100, ge=1)

    #: Signs dashboard session cookies. Unset, each process makes its own at start: sessions
    #: then end with the process and work on one replica only; set it to share them.
    session_secret: SecretStr | None = None
    #: Hours a dashboard session lasts.
    session_hours: float = Field(default=12.0, gt=0)

    #: Origins (`https://app.example.com`, comma-separated) whose pages may call the API
    #: from a browser (CORS), with a scoped token say; none by default.
    cors_origins: str = ""

    #: `text` or `json` (one object per line, with trace and span ids).
    log_format: Literal["text", "json"] = "text"
    #: Print spans to the console (OTLP is used when OTEL_EXPORTER_OTLP_ENDPOINT is set).
    trace_console: bool = False
    #: A span of its own, under the request's, for the service call a request makes
    #: (`JobManager.update_job` and the like). Off, the request's span carries that call's name
    #: and parameters itself: one span a request, about half what tracing costs with two.
    trace_inner_spans: bool = False
    #: How often the sweeper looks for jobs past their deadline or silent too long.
    sweep_interval_s: float = Field(default=5.0, gt=0)
    #: Seconds a job may stay unchanged (no transition, heartbeat or update) as created, as
    #: pending, and as running without a heartbeat timeout, before it is flagged stuck; `none`
    #: never.
    stale_created_s: float | None = Field(default=3600.0, gt=0)
    stale_pending_s: float | None = Field(default=3600.0, gt=0)
    stale_running_s: float | None = Field(default=None, gt=0)
    #: Keep ended jobs and finished webhooks this many days; `serve` prunes older ones every
    #: hour (none: keep everything).
    retention_days: float | None = Field(default=None, gt=0)
    #: `flag` a stale job stuck (and alert), or also `expire` it (stop reason `timeout`) once
    #: it stays unchanged a period more.
    stale_action: Literal["flag", "expire"] = "flag"
    #: `whsec_…`: sign every webhook (Standard Webhooks); unsigned without it.
    webhook_secret: str | None = None
    #: Seconds before each delivery attempt, the first included; comma-separated.
    webhook_retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    #: Allow callback URLs on loopback, private and link-local addresses (tests, closed networks).
    webhook_allow_private: bool = False
    #: Seconds one delivery attempt may take in all: resolving, connecting, sending, the answer.
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    #: Deliveries in flight at once, per process.
    webhook_concurrency: int = Field(default=16, ge=1)
    #: Deliveries in flight at once to one host, per process (a slow receiver holds no more).
    webhook_host_concurrency: int = Field(default=8, ge=1)
    #: Deliveries of one organization's callbacks in flight at once, per process: its
    #: hanging receivers hold no more, whatever hosts they are on.
    webhook_org_concurrency: int = Field(default=4, ge=1)
    #: An http(s) proxy for deliveries (none by default; HTTP_PROXY and the like are ignored).
    #: The proxy connects to the receiver: the guard then checks the receiver's addresses just
    #: before the request, not at the proxy's own connection.
    webhook_proxy: str | None = None
    #: How often the delivery worker looks for due events it was not told about.
    webhook_poll_s: float = Field(default=1.0, gt=0)
    #: How long a claimed event stays claimed: past it, another worker may deliver it. At
    #: least the attempt timeout plus LEASE_MARGIN_S.
    webhook_lease_s: float = Field(default=60.0, gt=0)
    #: Receives `job.stuck` and `callback.exhausted` alerts, and the `alert.firing` and
    #: `alert.resolved` messages of every organization's alert rules.
    alert_webhook: str | None = None
    #: How often the alert rules are evaluated (each once a period, across replicas).
    alert_interval_s: float = Field(default=60.0, gt=0)
    #: Receives a `step.completed` event for every recorded step.
    step_complete_webhook: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STEP_COMPLETE_WEBHOOK", "JOBPULSE_STEP_COMPLETE_WEBHOOK"),
    )
    #: Sent as `Authorization: Bearer <key>` with step events.
    step_complete_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STEP_COMPLETE_KEY", "JOBPULSE_STEP_COMPLETE_KEY"),
    )

    #: How often a followed LLM batch is polled at its provider.
    batch_poll_interval_s: float = Field(default=60.0, gt=0)
    #: Provider requests in flight at once, per process.
    batch_poll_concurrency: int = Field(default=8, ge=1)
    #: Seconds one provider request may take (reading an ended batch's results may take what
    #: the lease leaves after the status and cancel requests; see batch_lease_s).
    batch_timeout_s: float = Field(default=30.0, gt=0)
    #: How long a claimed batch stays claimed: past it, another poller may poll it. At least
    #: three times the request timeout plus LEASE_MARGIN_S.
    batch_lease_s: float = Field(default=300.0, gt=0)
    #: The longest a provider is paused (for every tenant) after a 429 or 5xx, whatever its
    #: Retry-After asks.
    batch_max_pause_s: float = Field(default=300.0, gt=0)
    #: Seconds a batch may stay unknown to its provider (404) before its job fails.
    batch_not_found_fail_s: float = Field(default=3600.0, gt=0)
    #: Seconds past its provider expiry a batch that has not ended is still followed; then
    #: its job expires (`timeout`) and it is let go.
    batch_expiry_grace_s: float = Field(default=3600.0, gt=0)
    #: A price file (TOML or JSON, see docs/usage.md) that extends the price table LLM calls
    #: are costed at, or replaces it; a bad line is refused at start.
    prices: Path | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    openai_base_url: str = "https://api.openai.com"
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ANTHROPIC_API_KEY", "JOBPULSE_ANTHROPIC_API_KEY"),
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "JOBPULSE_OPENAI_API_KEY")
    )

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        delays = [float(part) for part in value.split(",") if part.strip()]
        if not delays or any(delay < 0 for delay in delays):
            raise ValueError("a comma-separated list of seconds, none negative")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Settings:
        if self.webhook_lease_s < self.webhook_timeout_s + LEASE_MARGIN_S:
            raise ValueError(
                f"webhook_lease_s ({self.webhook_lease_s:g}) must be at least "
                f"webhook_timeout_s ({self.webhook_timeout_s:g}) + {LEASE_MARGIN_S:g}: "
                "a lease must outlast the attempt it covers"
            )
        if self.batch_lease_s < 3 * self.batch_timeout_s + LEASE_MARGIN_S:
            raise ValueError(
                f"batch_lease_s ({self.batch_lease_s:g}) must be at least three times "
                f"batch_timeout_s ({self.batch_timeout_s:g}) + {LEASE_MARGIN_S:g}: "
                "a lease must outlast the poll it covers"
            )
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins of `cors_origins`."""
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def retry_schedule(self) -> tuple[float, ...]:
        """The delay before each attempt, in seconds."""
        return tuple(float(part) for part in self.webhook_retry_schedule.split(",") if part.strip())
