"""Standard Webhooks headers and signatures: `v1,` and the base64 HMAC-SHA256 of
`{webhook-id}.{webhook-timestamp}.{body}` under the secret's key, made here with one call to
`hmac.digest` per attempt (the `standardwebhooks` package verifies, and decodes the key).
"""

from __future__ import annotations

import base64
import hmac
from datetime import datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobpulse import __version__

__all__ = ["Signer", "WebhookVerificationError", "headers", "verify"]

_USER_AGENT = f"jobpulse/{__version__}"


class Signer:
    """Makes the headers of deliveries, signed when there is a secret (its key decoded once)."""

    def __init__(self, secret: str | None) -> None:
        # The library decodes the key (its prefix, padding and checks) and signs as we do.
        self._key = Webhook(secret)._whsecret if secret else None

    def headers(self, webhook_id: str, sent_at: datetime, body: str) -> dict[str, str]:
        """The headers of one delivery attempt, stamped and signed for `sent_at`."""
        stamp = str(int(sent_at.timestamp()))
        result = {
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
            "webhook-id": webhook_id,
            "webhook-timestamp": stamp,
        }
        if self._key is not None:
            signed = hmac.digest(self._key, f"{webhook_id}.{stamp}.{body}".encode(), "sha256")
            result["webhook-signature"] = "v1," + base64.b64encode(signed).decode()
        return result


def headers(webhook_id: str, sent_at: datetime, body: str, secret: str | None) -> dict[str, str]:
    """The headers of one delivery; signed when there is a secret."""
    return Signer(secret).headers(webhook_id, sent_at, body)


def verify(headers: dict[str, str], body: bytes | str, secret: str) -> Any:
    """The parsed body if the signature is valid and recent (5 minutes); raises otherwise."""
    return Webhook(secret).verify(body, headers)
