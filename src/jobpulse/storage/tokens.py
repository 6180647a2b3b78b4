"""Statements on scoped tokens, and `SqlTokensStore`, the TokensStore on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from jobpulse.storage.engine import Database
from jobpulse.storage.feature_tables import scoped_tokens
from jobpulse.storage.tables import api_keys
from jobpulse.storage.tokens_store import FoundToken, TokensStore
from jobpulse.tokens.rules import Scope


def insert_token(
    connection: Connection,
    token_hash: str,
    key_hash: str,
    scope: Scope,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Store a token of the active key with this hash; False if there is none. Expired
    tokens are deleted on the way.
    """
    connection.execute(delete(scoped_tokens).where(scoped_tokens.c.expires_at <= now))
    key_id = connection.execute(
        select(api_keys.c.id).where(
            api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
        )
    ).scalar()
    if key_id is None:
        return False
    connection.execute(
        scoped_tokens.insert().values(
            id=token_hash,
            key_id=key_id,
            scope=scope.to_document(),
            created_at=now,
            expires_at=expires_at,
        )
    )
    return True


def find_token(connection: Connection, token_hash: str) -> FoundToken | None:
    """The stored token with this hash and its key's hash, if any."""
    row = connection.execute(
        select(scoped_tokens.c.scope, scoped_tokens.c.expires_at, api_keys.c.key_hash)
        .join(api_keys, api_keys.c.id == scoped_tokens.c.key_id)
        .where(scoped_tokens.c.id == token_hash)
    ).first()
    if row is None:
        return None
    return FoundToken(Scope.from_document(row.scope), row.expires_at, row.key_hash)


class SqlTokensStore(TokensStore):
    """The TokensStore part of SqlJobStore."""

    database: Database

    async def insert_token(
        self, token_hash: str, key_hash: str, scope: Scope, now: datetime, expires_at: datetime
    ) -> bool:
        return await self.database.write(insert_token, token_hash, key_hash, scope, now, expires_at)

    async def find_token(self, token_hash: str) -> FoundToken | None:
        return await self.database.read(find_token, token_hash)
