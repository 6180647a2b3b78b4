"""Pure webhook rules: retry decisions, Retry-After, address classes, payloads, signatures."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from jobpulse.client import verify_webhook
from jobpulse.domain import Job, JobStatus, StopReason
from jobpulse.webhooks import guard, payload, signing
from jobpulse.webhooks.policy import AttemptState, decide, retry_after_seconds

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SCHEDULE = (0.0, 5.0, 300.0)


def exact(delay: float) -> float:
    return delay


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_is_delivered(code: int) -> None:
    assert decide(1, code, NOW, SCHEDULE, spread=exact) == (AttemptState.DELIVERED, None)


def test_410_stops() -> None:
    assert decide(1, 410, NOW, SCHEDULE, spread=exact) == (AttemptState.FAILED, None)


@pytest.mark.parametrize(
    ("attempt", "code", "expected"),
    [
        (1, 500, (AttemptState.RETRYING, NOW + timedelta(seconds=5))),
        (2, None, (AttemptState.RETRYING, NOW + timedelta(seconds=300))),
        (2, 302, (AttemptState.RETRYING, NOW + timedelta(seconds=300))),
        (3, 503, (AttemptState.EXHAUSTED, None)),
        (9, 404, (AttemptState.EXHAUSTED, None)),
    ],
)
def test_failures_follow_the_schedule(
    attempt: int, code: int | None, expected: tuple[AttemptState, datetime | None]
) -> None:
    assert decide(attempt, code, NOW, SCHEDULE, spread=exact) == expected


def test_retry_after_wins_when_longer() -> None:
    state, when = decide(1, 429, NOW, SCHEDULE, retry_after=60, spread=exact)
    assert (state, when) == (AttemptState.RETRYING, NOW + timedelta(seconds=60))
    assert decide(2, 429, NOW, SCHEDULE, retry_after=1, spread=exact)[1] == NOW + timedelta(
        seconds=300
    )


def test_jitter_stays_within_ten_percent() -> None:
    for _ in range(200):
        _state, when = decide(2, 500, NOW, SCHEDULE)
        assert when is not None
        assert 270 <= (when - NOW).total_seconds() <= 330


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("Thu, 01 Jan 2026 00:01:00 GMT", 60.0), ("soon", None), (None, None)],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, NOW) == seconds


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.100.100.200", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        # IPv6 spellings of non-public IPv4 addresses, and the deprecated site-local range.
        ("::ffff:0:7f00:1", False),  # IPv4-translated 127.0.0.1
        ("::ffff:0:10.0.0.1", False),  # IPv4-translated, dotted
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::192.168.1.1", False),  # IPv4-compatible, dotted
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::169.254.169.254", False),  # NAT64 of the metadata service
        ("64:ff9b:1::a9fe:a9fe", False),  # local-use NAT64 of 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:3f57:fefe", False),  # Teredo, client 192.168.1.1
        ("fec0::1", False),  # site-local
        ("feff:ffff::1", False),  # site-local, its last address block
        ("2002:5db8:d822::1", True),  # 6to4 of a public address
        ("64:ff9b::5db8:d822", True),  # NAT64 of a public address
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
    ],
)
def test_address_classes(address: str, public: bool) -> None:
    assert guard.is_public(ipaddress.ip_address(address)) is public


def test_callback_payload_keeps_lettas_keys() -> None:
    job = Job(
        id="job-1",
        organization_id="o",
        user_id="u",
        job_type="agent",
        status=JobStatus.COMPLETED,
        stop_reason=StopReason.END_TURN,
        created_at=NOW,
        updated_at=NOW,
        completed_at=NOW,
        metadata={"k": "v"},
        callback_url="https://example.com/hook",
    )
    message = payload.callback(job, NOW)
    assert message.event_type == "job.completed"
    assert message.webhook_id.startswith("msg_")
    body = message.payload
    assert {k: body[k] for k in ("type", "job_id", "status", "stop_reason", "metadata")} == {
        "type": "job.completed",
        "job_id": "job-1",
        "status": "completed",
        "stop_reason": "end_turn",
        "metadata": {"k": "v"},
    }
    assert body["completed_at"] == "2026-01-01T00:00:00Z"
    assert body["data"]["id"] == "job-1"
    assert body["data"]["callback_url"] == "https://example.com/hook"


def test_signatures_verify_with_the_sdk_helper() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sent_at = datetime.now(UTC)
    body = '{"type":"job.completed"}'
    headers = signing.headers("msg_1", sent_at, body, secret)
    assert headers["webhook-signature"].startswith("v1,")
    assert verify_webhook(headers, body.encode(), secret) == {"type": "job.completed"}
    with pytest.raises(signing.WebhookVerificationError):
        verify_webhook(headers, body.replace("completed", "failed"), secret)
    stale = signing.headers("msg_1", sent_at - timedelta(minutes=6), body, secret)
    with pytest.raises(signing.WebhookVerificationError):
        verify_webhook(stale, body, secret)
    assert "webhook-signature" not in signing.headers("msg_1", sent_at, body, None)


@pytest.mark.parametrize(
    ("webhook_id", "body"),
    [
        ("msg_1", '{"type":"job.completed"}'),
        ("msg_2UKh0LH7v5ZbOtJ7jfNS6Yfg3Bv", '{"metadata":{"name":"Zoë ✓ 日本"}}'),
        ("msg_empty", ""),
        ("msg_long", '{"text":"' + "x" * 70_000 + '"}'),
    ],
)
def test_signatures_are_the_standardwebhooks_package_s_own(webhook_id: str, body: str) -> None:
    # The signer keys its HMAC once and copies it; the package keys one each message.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signer = signing.Signer(secret)
    for sent_at in (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 6, 9, 59, 59, 999_999, tzinfo=UTC),
    ):
        for _ in range(2):  # the keyed state is copied, never spent
            headers = signer.headers(webhook_id, sent_at, body)
            assert headers["webhook-signature"] == Webhook(secret).sign(webhook_id, sent_at, body)
            assert headers["webhook-timestamp"] == str(int(sent_at.timestamp()))
