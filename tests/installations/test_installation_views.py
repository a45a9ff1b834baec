"""The installation GETs and the app-user token list answer compiled rows as JSON: each item must be
what the response model gives for the ORM object (same keys, order and values), the installer's
and the owner's views alike, on every page."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.app_user_tokens.schemas import OwnedAppUserToken
from apps_api.installations import repository
from apps_api.installations.schemas import AppInstallation, OwnedAppInstallation
from apps_api.models import ApiToken, Asset
from apps_api.models.base import utcnow
from tests.fixtures.factories import Tenant, make_app


def _ordered(value: Any) -> str:
    # json.dumps keeps the dicts' order: equal strings mean equal keys, order and values.
    return json.dumps(value, ensure_ascii=False)


def _as_model(model: type[BaseModel], orm: Any) -> str:
    return _ordered(model.model_validate(orm).model_dump(mode="json"))


async def _pages(client: httpx.AsyncClient, url: str, tenant: Tenant, **params: str) -> list[dict[str, Any]]:
    """Every item of a list, following `next` links."""
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    query: dict[str, str] | None = params
    while next_url is not None:
        page = await client.get(next_url, params=query, headers=tenant.headers)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "application/json"
        body = page.json()
        assert list(body) == ["next", "previous", "results"]
        items.extend(body["results"])
        next_url, query = body["next"], None
    return items


async def _installed(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> tuple[uuid.UUID, uuid.UUID]:
    """Two installations in `tenant`: other_tenant's public bot app (icon, app user) and its own app."""
    icon = Asset(
        organization_id=other_tenant.org_id, url="https://cdn.example.com/ikon-ä.png", size=1, width=2
    )
    session.add(icon)
    await session.flush()
    now = utcnow().replace(microsecond=0)  # isoformat drops zero microseconds: both paths must agree
    bot_app = await make_app(
        session,
        other_tenant.organization,
        name="Äpp \U0001f600 \t tab",
        icon_asset_id=icon.id,
        is_available_to_anyone=True,
        is_approved=True,
        is_app_user_required=True,
        app_user_default_first_name='Zoë \u2028 "quoted"',
        app_user_default_last_name="Bot",
        required_scopes=["settings", "reports"],
        trigger_conditions=["install", "chat_end"],
        created_at=now,
    )
    own_app = await make_app(session, tenant.organization, created_at=now - timedelta(seconds=1))
    for app_id, body in (
        (bot_app.id, {"allowed_scopes": ["users", "settings", "reports"], "app_user": {"alias": "z"}}),
        (own_app.id, {}),
    ):
        installed = await client.post(
            f"/api/v5/orgs/{tenant.org_id}/app_installations",
            json={"app_id": str(app_id), **body},
            headers=tenant.headers,
        )
        assert installed.status_code == 201, installed.text
    return bot_app.id, own_app.id


async def test_installation_views_match_the_models(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    bot_app_id, own_app_id = await _installed(client, session, tenant, other_tenant)

    installations = f"/api/v5/orgs/{tenant.org_id}/app_installations"
    for params in ({}, {"page_size": "1"}, {"page_size": "1", "ordering": "created_at"}):
        listed = await _pages(client, installations, tenant, **params)
        assert len(listed) == 2
        for item in listed:
            orm = await repository.get_organization_installation(
                session=session, organization_id=tenant.org_id, installation_id=uuid.UUID(item["id"])
            )
            assert _ordered(item) == _as_model(AppInstallation, orm)
            retrieved = await client.get(f"{installations}/{item['id']}", headers=tenant.headers)
            assert retrieved.status_code == 200, retrieved.text
            assert _ordered(retrieved.json()) == _as_model(AppInstallation, orm)
    assert {item["app_user"] is None for item in listed} == {True, False}
    assert {item["app"]["icon_asset"] is None for item in listed} == {True, False}

    for owner, app_id in ((other_tenant, bot_app_id), (tenant, own_app_id)):
        owned = f"/api/v5/orgs/{owner.org_id}/owned_apps/{app_id}/installations"
        (item,) = await _pages(client, owned, owner)
        orm = await repository.get_app_installation(
            session=session, app_id=app_id, installation_id=uuid.UUID(item["id"])
        )
        assert _ordered(item) == _as_model(OwnedAppInstallation, orm)
        retrieved = await client.get(f"{owned}/{item['id']}", headers=owner.headers)
        assert retrieved.status_code == 200, retrieved.text
        assert _ordered(retrieved.json()) == _as_model(OwnedAppInstallation, orm)


async def test_owned_installation_not_found_names_what_is_missing(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    """The owner's retrieve checks the app and the installation in one statement; a miss still says which."""
    bot_app_id, own_app_id = await _installed(client, session, tenant, other_tenant)
    (installation,) = await _pages(
        client, f"/api/v5/orgs/{other_tenant.org_id}/owned_apps/{bot_app_id}/installations", other_tenant
    )
    cases = (
        # Another organization's app (installed in the caller's organization, even).
        (
            f"/api/v5/orgs/{tenant.org_id}/owned_apps/{bot_app_id}/installations/{installation['id']}",
            "No owned app found with the given ID.",
        ),
        # The caller's app, another app's installation.
        (
            f"/api/v5/orgs/{tenant.org_id}/owned_apps/{own_app_id}/installations/{installation['id']}",
            "No owned app installation found with the given ID.",
        ),
    )
    for url, detail in cases:
        for path in (url, url + "/app_user_tokens"):
            answer = await client.get(path, headers=tenant.headers)
            assert answer.status_code == 404, answer.text
            assert answer.json()["detail"] == detail


async def test_app_user_token_list_matches_the_model(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    bot_app_id, _ = await _installed(client, session, tenant, other_tenant)
    owned = f"/api/v5/orgs/{other_tenant.org_id}/owned_apps/{bot_app_id}/installations"
    (installation,) = await _pages(client, owned, other_tenant)
    tokens = f"{owned}/{installation['id']}/app_user_tokens"
    expires_at = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    minted = []
    for body in ({}, {"expires_at": expires_at.isoformat()}, {}):
        answer = await client.post(tokens, json=body, headers=other_tenant.headers)
        assert answer.status_code == 201, answer.text
        minted.append(answer.json()["id"])
    revoked = await client.delete(f"{tokens}/{minted[-1]}", headers=other_tenant.headers)
    assert revoked.status_code == 204, revoked.text

    orm = await repository.get_app_installation(
        session=session, app_id=bot_app_id, installation_id=uuid.UUID(installation["id"])
    )
    assert orm is not None
    for params in ({}, {"page_size": "1"}, {"page_size": "1", "ordering": "created_at"}):
        listed = await _pages(client, tokens, other_tenant, **params)
        assert sorted(item["id"] for item in listed) == sorted(minted[:2])  # never a revoked token
        for item in listed:
            token = await session.scalar(select(ApiToken).where(ApiToken.id == uuid.UUID(item["id"])))
            assert token is not None
            model = OwnedAppUserToken(
                id=token.id,
                app_user_id=token.user_id,
                installation_id=orm.id,
                organization_id=orm.organization_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
            assert _ordered(item) == _ordered(model.model_dump(mode="json"))
    assert {item["expires_at"] is None for item in listed} == {True, False}
