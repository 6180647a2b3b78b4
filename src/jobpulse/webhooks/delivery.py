"""The delivery worker: claims due outbox messages, POSTs them, records every attempt.

The only code that sends webhooks. It takes an injected httpx.AsyncClient, never raises
into its caller (a failure is an attempt like any other), and holds a message only under a
lease: if this process dies mid-delivery, the lease runs out and the message is sent again,
with the same webhook-id, by whichever worker claims it next. Delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from opentelemetry import propagate, trace

from jobpulse.config import Settings
from jobpulse.domain import OutboxMessage
from jobpulse.errors import ValidationError
from jobpulse.metrics import Metrics
from jobpulse.service import utcnow
from jobpulse.storage import outbox
from jobpulse.storage.engine import Database
from jobpulse.telemetry import tracer
from jobpulse.webhooks import guard, payload, policy, signing

logger = logging.getLogger("jobpulse.webhooks")


def new_client(settings: Settings) -> httpx.AsyncClient:
    """The pooled client deliveries use: bounded, no redirects, the configured timeout."""
    limits = httpx.Limits(max_connections=settings.webhook_concurrency)
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_s, limits=limits, follow_redirects=False
    )


def _peer_is_public(response: httpx.Response) -> bool:
    """Whether the connection that answered went to a public address (DNS rebinding check)."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not peer:
        return True
    return guard.is_public(ipaddress.ip_address(peer[0]))


class Deliverer:
    """Sends the outbox, `webhook_concurrency` messages at a time."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        wake: asyncio.Event | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.http = http
        self.wake = wake or asyncio.Event()
        self._now = clock
        self.metrics = metrics or Metrics()
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._stopping = False

    async def run(self) -> None:
        """Deliver until stopped; between rounds, wait to be woken or for the poll period."""
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except Exception:  # the database may be away for a while: keep going
                logger.exception("webhook delivery round failed")
                claimed = 0
            if claimed == 0 and not self._stopping:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.settings.webhook_poll_s)

    async def stop(self, worker: asyncio.Task[None]) -> None:
        """Claim nothing more and let the deliveries in flight finish (at most one timeout);
        any still unfinished is cancelled, and its lease hands it to the next worker.
        """
        self._stopping = True
        self.wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker, self.settings.webhook_timeout_s + 5)

    async def run_once(self) -> int:
        """Claim the due messages and deliver them all; how many there were."""
        now = self._now()
        lease = now + timedelta(seconds=self.settings.webhook_lease_s)
        limit = self.settings.webhook_concurrency * 4
        claimed = await self.database.write(outbox.claim_due, now, lease, limit)
        await asyncio.gather(*(self._deliver(message) for message in claimed))
        return len(claimed)

    async def _deliver(self, message: outbox.Claimed) -> None:
        async with self._slots:
            attempt, follow_up = await self._attempt(message)
        self.metrics.child(self.metrics.callbacks, message.event_type, attempt.state).inc()
        self.metrics.callback_latency.observe(attempt.duration_ms / 1000)
        try:
            await self.database.write(outbox.record_attempt, message, attempt, follow_up)
        except Exception:  # the lease runs out and the message is sent again
            logger.exception(
                "could not record attempt %s of %s", attempt.attempt, message.webhook_id
            )

    async def _attempt(
        self, message: outbox.Claimed
    ) -> tuple[outbox.Attempt, OutboxMessage | None]:
        number = message.attempts + 1
        sent_at = self._now()
        started = time.perf_counter()
        try:
            status_code, error, retry_after = await self._send(message, number, sent_at)
        except Exception as exc:  # a message that cannot be serialized or signed fails alone
            logger.exception("webhook %s cannot be sent", message.webhook_id)
            status_code, error, retry_after = None, f"cannot send: {exc}"[:1000], None
        duration_ms = (time.perf_counter() - started) * 1000
        state, next_at = policy.decide(
            number, status_code, sent_at, self.settings.retry_schedule, retry_after
        )
        attempt = outbox.Attempt(
            number, sent_at, status_code, error, duration_ms, state.value, next_at
        )
        return attempt, self._alert(message, attempt, state)

    async def _send(
        self, message: outbox.Claimed, number: int, sent_at: datetime
    ) -> tuple[int | None, str | None, float | None]:
        """One signed POST of the message, in a span continuing the trace that caused it."""
        if not isinstance(message.payload, dict):
            raise ValueError("the stored payload cannot be read as a JSON object")
        body = json.dumps(message.payload, separators=(",", ":"), allow_nan=False)
        headers = signing.headers(message.webhook_id, sent_at, body, self.settings.webhook_secret)
        if message.event_type == payload.STEP_COMPLETED and self.settings.step_complete_key:
            headers["authorization"] = f"Bearer {self.settings.step_complete_key}"
        parent = propagate.extract(message.trace_context or {})
        with tracer().start_as_current_span(
            f"webhook {message.event_type}", context=parent, kind=trace.SpanKind.CLIENT
        ) as span:
            span.set_attribute("webhook.id", message.webhook_id)
            span.set_attribute("webhook.attempt", number)
            propagate.inject(headers)  # traceparent, continuing the request that ended the job
            result = await self._post(message.url, body, headers, sent_at)
            if result[0] is not None:
                span.set_attribute("http.status_code", result[0])
        return result

    async def _post(
        self, url: str, body: str, headers: dict[str, str], sent_at: datetime
    ) -> tuple[int | None, str | None, float | None]:
        """(status code, error, Retry-After seconds) of one POST; never raises."""
        try:
            await guard.check(url, self.settings.webhook_allow_private)
            response = await self.http.post(url, content=body, headers=headers)
        except ValidationError as exc:
            return None, exc.message, None
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:1000], None
        if not self.settings.webhook_allow_private and not _peer_is_public(response):
            return None, "refused: the connection went to a private address", None
        if response.is_success:
            return response.status_code, None, None
        retry_after = policy.retry_after_seconds(response.headers.get("retry-after"), sent_at)
        return response.status_code, f"HTTP {response.status_code}", retry_after

    def _alert(
        self, message: outbox.Claimed, attempt: outbox.Attempt, state: policy.AttemptState
    ) -> OutboxMessage | None:
        """The `callback.exhausted` alert to queue, if this attempt was the last."""
        url = self.settings.alert_webhook
        if state != policy.AttemptState.EXHAUSTED or url is None:
            return None
        if message.event_type in (payload.CALLBACK_EXHAUSTED, payload.JOB_STUCK):
            return None  # alerts about alerts would never end
        data = {
            "job_id": message.job_id,
            "webhook_id": message.webhook_id,
            "event_type": message.event_type,
            "url": message.url,
            "attempts": attempt.attempt,
            "last_error": attempt.error,
        }
        return payload.alert(url, payload.CALLBACK_EXHAUSTED, data, attempt.attempted_at)
