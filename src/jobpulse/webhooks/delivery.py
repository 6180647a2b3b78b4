"""The delivery worker: claims due outbox messages, POSTs them, records every attempt.

The only code that sends webhooks, through a `Sender` (aiohttp, with the SSRF guard in its
resolver). It never raises into its caller: any answer, or none, ends as a recorded attempt.
A message is held only under a lease, longer than an attempt can last: if this process dies
mid-delivery, the lease runs out and the message is sent again, with the same webhook-id, by
whichever worker claims it next (at least once). A message whose lease would run out before
its attempt could end is not sent at all, so two workers never send one message at once.
A fixed set of `webhook_concurrency` sender coroutines takes the claimed messages from a fair
queue (`fairness.py`): at most `webhook_org_concurrency` sends of one organization's callbacks
and `webhook_host_concurrency` to one host at a time, and claims pass over the organizations
and hosts that hold their share already, so one tenant's hanging receivers cannot hold up
another's callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from opentelemetry import propagate, trace

from jobpulse.clock import utcnow
from jobpulse.config import Settings
from jobpulse.domain import OutboxMessage
from jobpulse.errors import ValidationError
from jobpulse.metrics import Metrics
from jobpulse.storage import claims, outbox
from jobpulse.storage.store import JobStore
from jobpulse.telemetry import tracer, tracing_enabled
from jobpulse.webhooks import guard, payload, policy, signing
from jobpulse.webhooks.fairness import FairQueue, Taken
from jobpulse.webhooks.pace import ClaimPace
from jobpulse.webhooks.recorder import Recorder
from jobpulse.webhooks.sender import AiohttpSender, Reply, Sender, SendError

logger = logging.getLogger("jobpulse.webhooks")


def new_client(settings: Settings) -> AiohttpSender:
    """The sender deliveries use (an async context manager that closes it)."""
    return AiohttpSender(settings)


class Deliverer:
    """Sends the outbox, `webhook_concurrency` messages at a time."""

    def __init__(
        self,
        store: JobStore,
        settings: Settings,
        sender: Sender,
        *,
        wake: asyncio.Event | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sender = sender
        self.wake = wake or asyncio.Event()
        self._now = clock
        self.metrics = metrics or Metrics()
        #: Claimed messages (with their lease) waiting for a sender.
        self._queue: FairQueue[tuple[outbox.Claimed, datetime]] = FairQueue(
            settings.webhook_org_concurrency, settings.webhook_host_concurrency
        )
        self._senders: list[asyncio.Task[None]] = []
        #: Claimed messages held per organization and host at most, at the least pace:
        #: enough to keep their slots busy between claims, and no more (the rest is left to
        #: other workers).
        self._org_held_least = settings.webhook_org_concurrency * 8
        self._host_held_least = settings.webhook_host_concurrency * 8
        self._held_org: Counter[str] = Counter()
        self._held_host: Counter[str] = Counter()
        #: The organizations and hosts whose share was full at the last claim (due messages
        #: of theirs may have been left): half of it free again wakes the claims.
        self._full_orgs: set[str] = set()
        self._full_hosts: set[str] = set()
        #: Claimed messages ready to send (not held back by their organization's or host's
        #: cap) at most, at the least pace: enough to keep every slot busy. The pace scales
        #: it, and the shares above, while the senders keep up (see `pace.py`).
        self._pace = ClaimPace(settings.webhook_concurrency * 4, time.monotonic())
        #: Claimed messages not yet sent (or given up): queued or in a sender's hands.
        self._held = 0
        #: Set while no claimed message is held.
        self._drained = asyncio.Event()
        self._drained.set()
        #: Set when at most half the capacity is ready or in flight.
        self._room = asyncio.Event()
        self._recorder = Recorder(store, self.metrics)
        self._stopping = False
        self._schedule = settings.retry_schedule
        #: An attempt ends within the timeout: it must start this long before its lease ends.
        self._start_margin = timedelta(seconds=settings.webhook_timeout_s + 1)
        self._signer = signing.Signer(settings.webhook_secret)

    async def run(self) -> None:
        """Deliver until stopped: claim due messages while there is room, send each as soon
        as its host has a slot; once the backlog is drained, wait to be woken (or for the
        poll period), and while it is not, for half the room to be free again.
        """
        self._open()
        try:
            await self._claim_while_running()
        finally:
            if not self._stopping:  # cancelled from outside: its sends end with it
                await self._close()

    async def _claim_while_running(self) -> None:
        while not self._stopping:
            self._pace.measure(time.monotonic())
            room = self._room_left()
            # Cleared before the claim: news that comes while it runs is not lost.
            self.wake.clear()
            claimed = 0
            try:
                claimed = len(await self._start(room))
            except Exception:  # the database may be away for a while: keep going
                logger.exception("webhook delivery round failed")
            if self._stopping:
                break
            if claimed < room:  # drained, or what is left waits for a full share to free
                await _wait(self.wake, self.settings.webhook_poll_s)
            elif self._room_left() < self._capacity() // 2:
                self._room.clear()
                await _wait(self._room, self.settings.webhook_poll_s)

    async def stop(self, worker: asyncio.Task[None]) -> None:
        """Claim nothing more and let the claimed messages go out (for one timeout at most);
        any still unsent then is left, and its lease hands it to the next worker.
        """
        self._stopping = True
        self.wake.set()
        self._room.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker, self.settings.webhook_timeout_s + 5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), self.settings.webhook_timeout_s)
        await self._close()
        await self._recorder.flush()

    async def run_once(self) -> int:
        """Claim the due messages (within the shares) and deliver them all; how many there
        were.
        """
        opened = self._open()
        try:
            started = await self._start(self._capacity())
            await self._drained.wait()
        finally:
            if opened:
                await self._close()
        await self._recorder.flush()
        return len(started)

    def _open(self) -> bool:
        """Start the senders, unless they run already; whether they were started."""
        if self._senders:
            return False
        count = self.settings.webhook_concurrency
        self._senders = [asyncio.create_task(self._send_from_queue()) for _ in range(count)]
        return True

    async def _close(self) -> None:
        """Stop the senders: a send in flight is cut short, and its lease hands it on."""
        senders, self._senders = self._senders, []
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)

    async def _send_from_queue(self) -> None:
        """One sender: the next message its organization's and host's caps allow, in turn."""
        while True:
            taken = await self._queue.get()
            self._check_room()  # its pair may be at its cap now: the rest of it is blocked
            try:
                await self._deliver(*taken.item)
            except Exception:  # never lose the sender: the lease hands the message on
                logger.exception("webhook %s: delivery failed", taken.item[0].webhook_id)
            finally:
                self._finished(taken)

    async def _start(self, limit: int) -> list[outbox.Claimed]:
        """Claim up to `limit` due messages and queue each for the senders."""
        now = self._now()
        lease = now + timedelta(seconds=self.settings.webhook_lease_s)
        shares = claims.Shares(
            self._pace.scaled(self._org_held_least),
            self._pace.scaled(self._host_held_least),
            dict(self._held_org),
            dict(self._held_host),
        )
        recorded = self._recorder.take()
        try:
            claimed = await self.store.claim_outbox(now, lease, limit, shares, recorded)
        except Exception:
            self._recorder.give_back(recorded)
            raise
        if claimed:
            self._held += len(claimed)
            self._drained.clear()
        for message in claimed:
            host = self._count(message, 1)
            self._queue.put((message, lease), message.organization_id, host)
        self._full_orgs, self._full_hosts = shares.filled(claimed)
        return claimed

    def _count(self, message: outbox.Claimed, change: int) -> str:
        """Count a message held (1) or let go (-1) against its organization's and host's
        shares (its host, which it returns); a share left full by the last claim wakes the
        claims once half of it is free (so they take many messages at a time, not one per
        delivery).
        """
        org, host = message.organization_id, claims.host_of(message.url)
        if org is not None:
            _add(self._held_org, org, change)
            if (
                org in self._full_orgs
                and self._held_org[org] <= self._pace.scaled(self._org_held_least) // 2
            ):
                self._full_orgs.discard(org)
                self.wake.set()
        _add(self._held_host, host, change)
        if (
            host in self._full_hosts
            and self._held_host[host] <= self._pace.scaled(self._host_held_least) // 2
        ):
            self._full_hosts.discard(host)
            self.wake.set()
        return host

    def _room_left(self) -> int:
        """How many more messages to claim: those waiting for a slow host do not count
        against the capacity, so the other hosts' messages keep coming, within a hard cap.
        """
        ready = self._held - self._queue.blocked
        capacity = self._capacity()
        return min(capacity - ready, capacity * 4 - self._held)

    def _capacity(self) -> int:
        """Claimed messages ready to send at most; all held, waiting ones included, at most
        four times that.
        """
        return self._pace.scaled(self._pace.least_ready)

    def _finished(self, taken: Taken[tuple[outbox.Claimed, datetime]]) -> None:
        self._queue.done(taken)
        self._pace.sent()
        self._held -= 1
        if not self._held:
            self._drained.set()
        self._count(taken.item[0], -1)
        self._check_room()

    def _check_room(self) -> None:
        # Only while the claims wait for room: a delivery's own work does not count it.
        if not self._room.is_set() and self._room_left() >= self._capacity() // 2:
            self._room.set()

    async def _deliver(self, message: outbox.Claimed, lease: datetime) -> None:
        """One attempt of the message, recorded: a signed POST in a span continuing the
        trace that caused it. The sender's await is the only one below the sender's loop
        (each coroutine between them would be resumed and suspended with every await of
        the request).
        """
        sent_at = self._now()
        if sent_at > lease - self._start_margin:
            return  # it waited too long for a sender: the next claim after the lease sends it
        number = message.attempts + 1
        status_code: int | None
        error: str | None
        retry_after: float | None
        started = time.perf_counter()
        try:
            body, headers = self._request(message, sent_at)
            with self._span(message, number, headers) as span:
                try:
                    guard.split(message.url)
                    reply = await self.sender.post(message.url, body, headers)
                except ValidationError as exc:
                    status_code, error, retry_after = None, exc.message, None
                except SendError as exc:
                    status_code, error, retry_after = None, str(exc)[:1000], None
                else:
                    status_code, error, retry_after = _answered(reply, sent_at)
                    if span is not None:
                        span.set_attribute("http.status_code", reply.status)
        except Exception as exc:  # a message that cannot be serialized or signed fails alone
            logger.exception("webhook %s cannot be sent", message.webhook_id)
            status_code, error, retry_after = None, f"cannot send: {exc}"[:1000], None
        duration_ms = (time.perf_counter() - started) * 1000
        state, next_at = policy.decide(number, status_code, sent_at, self._schedule, retry_after)
        attempt = outbox.Attempt(
            number, sent_at, status_code, error, duration_ms, state.value, next_at
        )
        self.metrics.callback_latency.observe(duration_ms / 1000)
        self._recorder.add((message, attempt, self._alert(message, attempt, state)))

    def _request(self, message: outbox.Claimed, sent_at: datetime) -> tuple[bytes, dict[str, str]]:
        """The body and the signed headers of one attempt."""
        body = message.body
        if body is None:  # written before bodies were kept, or not sendable as it is
            if not isinstance(message.document, dict):
                raise ValueError("the stored payload cannot be read as a JSON object")
            body = json.dumps(message.document, separators=(",", ":"), allow_nan=False)
        headers = self._signer.headers(message.webhook_id, sent_at, body)
        if message.event_type == payload.STEP_COMPLETED and self.settings.step_complete_key:
            headers["authorization"] = f"Bearer {self.settings.step_complete_key}"
        return body.encode(), headers

    def _span(
        self, message: outbox.Claimed, number: int, headers: dict[str, str]
    ) -> contextlib.AbstractContextManager[trace.Span | None]:
        """The attempt's span, its trace context added to `headers`; untraced, the caller's
        trace context is passed on as it is, without span work.
        """
        if not tracing_enabled():
            headers.update(message.trace_context or {})
            return _UNTRACED
        return _traced(message, number, headers)

    def _alert(
        self, message: outbox.Claimed, attempt: outbox.Attempt, state: policy.AttemptState
    ) -> OutboxMessage | None:
        """The `callback.exhausted` alert to queue, if this attempt was the last."""
        url = self.settings.alert_webhook
        if state != policy.AttemptState.EXHAUSTED or url is None:
            return None
        if message.event_type in payload.OPERATOR_ALERTS:
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


_UNTRACED: contextlib.nullcontext[None] = contextlib.nullcontext()


@contextlib.contextmanager
def _traced(message: outbox.Claimed, number: int, headers: dict[str, str]) -> Iterator[trace.Span]:
    """A client span for one attempt, continuing the request that caused the message; its
    traceparent goes in `headers`.
    """
    parent = propagate.extract(message.trace_context or {})
    with tracer().start_as_current_span(
        f"webhook {message.event_type}", context=parent, kind=trace.SpanKind.CLIENT
    ) as span:
        span.set_attribute("webhook.id", message.webhook_id)
        span.set_attribute("webhook.attempt", number)
        propagate.inject(headers)
        yield span


def _answered(reply: Reply, sent_at: datetime) -> tuple[int, str | None, float | None]:
    """(status code, error, Retry-After seconds) of an answer."""
    error = None if 200 <= reply.status < 300 else f"HTTP {reply.status}"
    if reply.cut:
        error = f"{error or 'delivered'}; the answer was cut at 64 KiB"
    return reply.status, error, policy.retry_after_seconds(reply.retry_after, sent_at)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set, for `seconds` at most."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


def _add(counts: Counter[str], key: str, change: int) -> None:
    """Change a count; counts at zero go, so idle tenants and hosts cost nothing."""
    counts[key] += change
    if counts[key] <= 0:
        del counts[key]
