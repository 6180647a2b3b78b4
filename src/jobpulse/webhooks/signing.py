"""Standard Webhooks headers and signatures (the `standardwebhooks` package does the crypto)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobpulse import __version__

__all__ = ["Signer", "WebhookVerificationError", "headers", "verify"]

_USER_AGENT = f"jobpulse/{__version__}"


class Signer:
    """Makes the headers of deliveries, signed when there is a secret (its key decoded once)."""

    def __init__(self, secret: str | None) -> None:
        self._webhook = Webhook(secret) if secret else None

    def headers(self, webhook_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        """The headers of one delivery attempt, stamped and signed for `sent_at`."""
        result = {
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if self._webhook is not None:
            result["webhook-signature"] = self._webhook.sign(webhook_id, sent_at, body)
        return result


def headers(webhook_id: str, sent_at: datetime, body: str, secret: str | None) -> dict[str, str]:
    """The headers of one delivery; signed when there is a secret."""
    return Signer(secret).headers(webhook_id, sent_at, body)


def verify(headers: dict[str, str], body: bytes | str, secret: str) -> Any:
    """The parsed body if the signature is valid and recent (5 minutes); raises otherwise."""
    return Webhook(secret).verify(body, headers)
