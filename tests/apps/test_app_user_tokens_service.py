"""app_user_tokens/service.py at its boundary: an expiry of exactly now is not in the future.

Through the API the clock has always moved on by the time the service reads it, so the boundary
is checked here with the service's clock held at one instant.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.app_user_tokens import service
from apps_api.kit.errors import BadRequest, NotFound
from apps_api.models import AppInstallation
from apps_api.models.base import utcnow
from tests.fixtures.factories import make_tenant
from tests.fixtures.installflow import make_bot_app, make_installer


async def _installation(client: httpx.AsyncClient, session: AsyncSession, name: str) -> AppInstallation:
    """A bot app of a new provider, installed by a new organization (so it has an app user)."""
    provider = await make_tenant(session, name=f"{name} provider", features=["apps", "app_provider"])
    installer = await make_installer(session, name=f"{name} installer")
    app = await make_bot_app(session, provider.organization, required_scopes=[], name=name)
    response = await client.post(
        f"/api/v5/orgs/{installer.org_id}/app_installations",
        json={"app_id": str(app.id), "allowed_scopes": []},
        headers=installer.headers,
    )
    assert response.status_code == 201, response.text
    installation = await session.get(AppInstallation, uuid.UUID(response.json()["id"]))
    assert installation is not None and installation.app_user_id is not None
    return installation


async def test_each_installation_lists_its_own_live_tokens_only(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Whichever way the installations' ids sort, neither lists the other's token."""
    installations = [await _installation(client, session, name) for name in ("First", "Second")]
    minted = {}
    for installation in installations:
        row, _ = await service.mint(session=session, installation=installation, expires_at=None)
        minted[installation.id] = row.id
    revoked, _ = await service.mint(session=session, installation=installations[0], expires_at=None)
    await service.revoke(session=session, installation=installations[0], token_id=revoked.id)
    for installation in installations:
        listed = await session.scalars(service.tokens_of(installation=installation))
        assert [token.id for token in listed] == [minted[installation.id]]


async def test_a_revoke_takes_that_token_of_that_installation_only(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Of three tokens the one in the middle (by id) is revoked, the other two stay live; and
    neither installation revokes the other's token, whichever id sorts first."""
    first, second = [await _installation(client, session, name) for name in ("First", "Second")]
    rows = sorted(
        [(await service.mint(session=session, installation=first, expires_at=None))[0] for _ in range(3)],
        key=lambda row: row.id,
    )
    await service.revoke(session=session, installation=first, token_id=rows[1].id)
    live = await session.scalars(service.tokens_of(installation=first))
    assert sorted(token.id for token in live) == [rows[0].id, rows[2].id]

    other, _ = await service.mint(session=session, installation=second, expires_at=None)
    for installation, token in ((first, other), (second, rows[0]), (second, rows[2])):
        with pytest.raises(NotFound):
            await service.revoke(session=session, installation=installation, token_id=token.id)
    assert [token.id for token in await session.scalars(service.tokens_of(installation=second))] == [other.id]
    assert len(list(await session.scalars(service.tokens_of(installation=first)))) == 2


async def test_an_expiry_in_another_time_zone_is_that_instant(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """An aware expiry is kept as the instant it names, not re-labelled as UTC."""
    installation = await _installation(client, session, "Bot")
    in_an_hour = (utcnow() + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    row, _ = await service.mint(session=session, installation=installation, expires_at=in_an_hour)
    assert row.expires_at == in_an_hour


async def test_an_expiry_of_exactly_now_is_refused_and_one_microsecond_later_is_minted(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation = await _installation(client, session, "Bot")
    now = utcnow()
    monkeypatch.setattr(service, "utcnow", lambda: now)

    # Aware or naive (read as UTC): exactly now is refused.
    for expires_at in (now, now.replace(tzinfo=None)):
        with pytest.raises(BadRequest) as refused:
            await service.mint(session=session, installation=installation, expires_at=expires_at)
        assert refused.value.errors == {"expires_at": ["Must be in the future."]}
    later: datetime = now + timedelta(microseconds=1)
    row, key = await service.mint(session=session, installation=installation, expires_at=later)
    assert row.expires_at == later and row.app_installation_id == installation.id and key
