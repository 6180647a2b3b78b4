"""What `serve` does before it listens: migrate, and make the first admin key if none exists."""

from __future__ import annotations

from jobpulse.config import Settings
from jobpulse.keys import KeyManager
from jobpulse.storage.migrate import upgrade
from jobpulse.storage.sql_store import open_store

FIRST_ORGANIZATION = "default"
FIRST_USER = "admin"


async def prepare(settings: Settings) -> str | None:
    """Migrate the database; the secret of a new admin key if there was no key at all."""
    await upgrade(settings.database_url)
    store = open_store(settings)
    try:
        keys = KeyManager(store)
        if await keys.count_active() > 0:
            return None
        _key, secret = await keys.create(
            organization_id=FIRST_ORGANIZATION, user_id=FIRST_USER, is_admin=True, name="first"
        )
        return secret
    finally:
        await store.close()
