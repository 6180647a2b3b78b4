"""`jobpulse keys`: create, list and revoke API keys, on the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import typer

from jobpulse.cli.root import DatabaseUrl, exit_on_error, keys_app, new_table, out, settings_of


def _with_keys(database_url: str | None, use: Callable[[Any], Any]) -> Any:
    from jobpulse.keys import KeyManager
    from jobpulse.storage.sql_store import open_store

    async def run() -> Any:
        store = open_store(settings_of(database_url))
        try:
            return await use(KeyManager(store))
        finally:
            await store.close()

    return exit_on_error(lambda: asyncio.run(run()))


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="The user the key acts as.")],
    org: Annotated[str, typer.Option(help="The organization of that user.")],
    admin: Annotated[bool, typer.Option(help="See the whole organization.")] = False,
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it, alone, on stdout (it is not stored and not shown again)."""

    async def create(keys: Any) -> str:
        _key, secret = await keys.create(
            organization_id=org, user_id=user, is_admin=admin, name=name
        )
        return str(secret)

    print(_with_keys(database_url, create))


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None) -> None:
    """List keys (never their secrets)."""
    keys = _with_keys(database_url, lambda manager: manager.list())
    table = new_table("id", "prefix", "organization", "user", "role", "created", "revoked")
    for key in keys:
        role = "admin" if key.is_admin else "member"
        revoked = key.revoked_at.isoformat() if key.revoked_at else ""
        created = key.created_at.isoformat(timespec="seconds")
        table.add_row(key.id, key.prefix, key.organization_id, key.user_id, role, created, revoked)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, database_url: DatabaseUrl = None) -> None:
    """Revoke a key by id."""
    _with_keys(database_url, lambda manager: manager.revoke(key_id))
    out.print(f"revoked {key_id}")
