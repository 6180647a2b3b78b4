"""Standard Webhooks headers and signatures (the `standardwebhooks` package does the crypto)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobpulse import __version__

__all__ = ["WebhookVerificationError", "headers", "verify"]


def headers(webhook_id: str, sent_at: datetime, body: str, secret: str | None) -> dict[str, str]:
    """The headers of one delivery; signed when there is a secret."""
    result = {
        "content-type": "application/json",
        "user-agent": f"jobpulse/{__version__}",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
    }
    if secret:
        result["webhook-signature"] = Webhook(secret).sign(webhook_id, sent_at, body)
    return result


def verify(headers: dict[str, str], body: bytes | str, secret: str) -> Any:
    """The parsed body if the signature is valid and recent (5 minutes); raises otherwise."""
    return Webhook(secret).verify(body, headers)
