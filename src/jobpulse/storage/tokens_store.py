"""The store's operations on scoped tokens (jobpulse.tokens), kept by the SHA-256 of their
secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from jobpulse.tokens.rules import Scope


@dataclass(frozen=True, slots=True)
class FoundToken:
    """A stored token: what it reads, until when, and the key that minted it (whose
    revocation ends it).
    """

    scope: Scope
    expires_at: datetime
    #: The SHA-256 of the issuing key.
    key_hash: str


class TokensStore(Protocol):
    """Scoped tokens."""

    async def insert_token(
        self, token_hash: str, key_hash: str, scope: Scope, now: datetime, expires_at: datetime
    ) -> bool:
        """Store a token of the active key with this hash (expired tokens are deleted on the
        way); False if there is no such key.
        """
        ...

    async def find_token(self, token_hash: str) -> FoundToken | None:
        """The token with this hash, expired or not, if it is stored."""
        ...
