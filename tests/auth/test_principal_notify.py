"""What NOTIFYs the principal caches (migrations 1700 and 1800), in committed transactions.

An install with a fresh app user changes no cached principal, so it must not empty every
process's cache (under a stream of installs the cache would never serve a hit); an install whose
app user already holds a live token, and an uninstall, must.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from apps_api.auth.principal_cache import CHANNEL, listen_url
from apps_api.platform import service as platform
from apps_api.settings import Settings
from tests.fixtures.factories import make_app, make_tenant, make_user

_PROBE = f"{CHANNEL}_test_probe"


@pytest.fixture
async def listening(settings: Settings) -> AsyncIterator[Callable[[], Any]]:
    """A LISTEN connection on the cache's channel and a probe channel; yields `heard()`: whether the
    principal channel was notified since the last call (the probe marks that all has arrived)."""
    connection = await asyncpg.connect(listen_url(settings))
    notified: list[str] = []
    probed = asyncio.Event()
    await connection.add_listener(CHANNEL, lambda *args: notified.append(args[2]))
    await connection.add_listener(_PROBE, lambda *_: probed.set())

    async def heard() -> bool:
        probed.clear()
        await connection.execute(f"NOTIFY {_PROBE}")  # after every commit before this call
        await asyncio.wait_for(probed.wait(), timeout=10)
        was = bool(notified)
        notified.clear()
        return was

    yield heard
    await connection.close()


async def _install(
    engine: AsyncEngine, app_id: uuid.UUID, organization_id: uuid.UUID, user_id: uuid.UUID
) -> uuid.UUID:
    installation_id = uuid.uuid4()
    async with engine.begin() as connection:
        await connection.exec_driver_sql(
            "INSERT INTO app_installations (id, app_id, organization_id, app_user_id, allowed_scopes, "
            "created_at, updated_at) VALUES ($1, $2, $3, $4, ARRAY[]::text[], now(), now())",
            (installation_id, app_id, organization_id, user_id),
        )
    return installation_id


async def test_installs_notify_only_when_their_app_user_already_has_a_live_token(
    engine: AsyncEngine, listening: Callable[[], Any]
) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        tenant = await make_tenant(session, name=f"notify-{uuid.uuid4().hex[:8]}")
        organization = tenant.organization
        apps = [await make_app(session, organization) for _ in range(3)]
        # What the service creates at every install: an app user without any token.
        fresh = await platform.create_user(
            session=session, organization_id=organization.id, permissions=[], first_name="Bot", last_name="A"
        )
        with_token, _ = await make_user(session, organization)
        revoked, _ = await make_user(session, organization)
        await session.commit()
    async with engine.begin() as connection:
        await connection.exec_driver_sql(
            "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1", (revoked.id,)
        )
    try:
        await listening()  # drain what the set-up sent
        await _install(engine, apps[0].id, organization.id, fresh.id)
        assert not await listening()  # nobody's principal changed: no cache is emptied
        await _install(engine, apps[1].id, organization.id, revoked.id)
        assert not await listening()  # a revoked token is in no cache either
        installation = await _install(engine, apps[2].id, organization.id, with_token.id)
        assert await listening()  # that user's cached principal is now the app's
        async with engine.begin() as connection:
            await connection.exec_driver_sql("DELETE FROM app_installations WHERE id = $1", (installation,))
        assert await listening()  # an uninstall, as ever
    finally:
        async with engine.begin() as connection:
            await _delete_organization(connection, organization.id)


async def _delete_organization(connection: Any, organization_id: uuid.UUID) -> None:
    for statement in (
        "DELETE FROM app_installations WHERE organization_id = $1",
        "DELETE FROM apps WHERE owned_by_organization_id = $1",
        "DELETE FROM api_tokens WHERE user_id IN (SELECT id FROM users WHERE organization_id = $1)",
        "DELETE FROM users WHERE organization_id = $1",
        "DELETE FROM organizations WHERE id = $1",
    ):
        await connection.exec_driver_sql(statement, (organization_id,))
