"""Standard Webhooks headers and signatures (the `standardwebhooks` package does the crypto)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobpulse import __version__

__all__ = ["Signer", "WebhookVerificationError", "headers", "verify"]

_USER_AGENT = f"jobpulse/{__version__}"


class _KeyedWebhook(Webhook):
    """The package's `Webhook` with its HMAC keyed once: `Webhook.sign` keys a new one for
    every message (OpenSSL's key setup costs more than hashing a callback's body), this
    copies the keyed state. The signature is the package's, byte for byte
    (tests/unit/test_webhook_rules.py compares them).
    """

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self._keyed = hmac.new(self._whsecret, digestmod=hashlib.sha256)

    def signature(self, msg_id: str, timestamp: str, data: str) -> str:
        """`Webhook.sign`'s value for `timestamp`, whole seconds since the epoch as text."""
        keyed = self._keyed.copy()
        keyed.update(f"{msg_id}.{timestamp}.{data}".encode())
        return f"v1,{base64.b64encode(keyed.digest()).decode()}"


class Signer:
    """Makes the headers of deliveries, signed when there is a secret (its key decoded and
    its HMAC keyed once).
    """

    def __init__(self, secret: str | None) -> None:
        self._webhook = _KeyedWebhook(secret) if secret else None

    def headers(self, webhook_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        """The headers of one delivery attempt, stamped and signed for `sent_at`."""
        timestamp = str(int(sent_at.timestamp()))
        result = {
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
        }
        if self._webhook is not None:
            result["webhook-signature"] = self._webhook.signature(webhook_id, timestamp, body)
        return result


def headers(webhook_id: str, sent_at: datetime, body: str, secret: str | None) -> dict[str, str]:
    """The headers of one delivery; signed when there is a secret."""
    return Signer(secret).headers(webhook_id, sent_at, body)


def verify(headers: dict[str, str], body: bytes | str, secret: str) -> Any:
    """The parsed body if the signature is valid and recent (5 minutes); raises otherwise."""
    return Webhook(secret).verify(body, headers)
