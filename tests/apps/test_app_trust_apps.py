"""What installing organizations are told and what giosg approved (issue 12, points 7 and 8)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.platform.service import approve_app, create_asset
from tests.fixtures.apps import app_payload, events, install_via_api, installed_org_ids, owned_url
from tests.fixtures.factories import Tenant, make_app, make_tenant


async def _installers(session: AsyncSession, count: int) -> list[Tenant]:
    return [await make_tenant(session, name=f"Installer {n}") for n in range(count)]


async def _installed_app_changes(session: AsyncSession, app_id: uuid.UUID) -> list[Any]:
    return [
        event
        for event in await events(session, action="changed", resource_id=str(app_id))
        if event.channel.endswith("/installed_apps")
    ]


async def test_installing_organizations_hear_changes_of_the_installed_view(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization, is_available_to_anyone=True, is_approved=True)
    x, y = await _installers(session, 2)
    bystander = await make_tenant(session, name="Bystander")
    for installer in (x, y, tenant):
        await install_via_api(client, installer, app.id)

    renamed = await client.patch(
        owned_url(tenant, app.id),
        json={"name": "Renamed", "description": "New words", "trigger_conditions": ["uninstall"]},
        headers=tenant.headers,
    )
    assert renamed.status_code == 200, renamed.text

    changes = await _installed_app_changes(session, app.id)
    assert sorted(e.organization_id for e in changes) == sorted([x.org_id, y.org_id, tenant.org_id])
    assert bystander.org_id not in {e.organization_id for e in changes}
    for event in changes:
        assert event.channel == f"/api/v5/orgs/{event.organization_id}/installed_apps"
        assert event.required_scope == "settings" and event.actor_user_id == tenant.user.id
        # Only the changed attributes of the installed view (and when).
        assert event.resource == {
            "name": "Renamed",
            "description": "New words",
            "trigger_conditions": ["uninstall"],
            "updated_at": renamed.json()["updated_at"],
        }

    # What the installed view does not show is the owner's business only.
    unseen = await client.patch(
        owned_url(tenant, app.id),
        json={"terms_of_service_url": "https://example.com/new-tos", "name": "Renamed"},
        headers=tenant.headers,
    )
    assert unseen.status_code == 200
    assert len(await _installed_app_changes(session, app.id)) == 3

    icon = await create_asset(
        session=session, organization_id=tenant.org_id, url="https://cdn.example.com/i.png"
    )
    iconic = await client.patch(
        owned_url(tenant, app.id), json={"icon_asset_id": str(icon.id)}, headers=tenant.headers
    )
    assert iconic.status_code == 200
    latest = (await _installed_app_changes(session, app.id))[3:]
    assert len(latest) == 3
    assert set(latest[0].resource) == {"icon_asset_id", "icon_asset", "updated_at"}
    assert latest[0].resource["icon_asset"]["url"] == "https://cdn.example.com/i.png"


async def _public_ids(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    response = await client.get("/api/v5/public_apps", headers=tenant.headers)
    assert response.status_code == 200
    return [item["id"] for item in response.json()["results"]]


@pytest.mark.parametrize(
    "change",
    [
        {"name": "giosg Official Security Update"},
        {"description": "Now with more access"},
        {"icon_asset_id": None},
        {"required_scopes": ["reports", "settings", "users"]},
        {"trigger_url": "https://elsewhere.example.com/trigger"},
        {"trigger_conditions": ["install", "chat_start"]},
        # What users are shown: where the terms and the privacy policy are, the bot and its names.
        {"terms_of_service_url": "https://phish.example.net/tos"},
        {"privacy_policy_url": "https://phish.example.net/privacy"},
        {"is_app_user_required": True},
        {"app_user_default_first_name": "giosg"},
        {"app_user_default_last_name": "Support Team"},
        {"app_user_default_alias": "giosg Support Team"},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_a_material_edit_clears_the_approval(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, change: dict[str, Any]
) -> None:
    icon = await create_asset(
        session=session, organization_id=tenant.org_id, url="https://cdn.example.com/a.png"
    )
    app = await make_app(
        session,
        tenant.organization,
        is_available_to_anyone=True,
        is_approved=True,
        icon_asset_id=icon.id,
        required_scopes=["reports"],
        trigger_url="https://bot.example.com/trigger",
        trigger_conditions=["install"],
        app_user_default_first_name="Weather",
        app_user_default_last_name="Bot",
        app_user_default_alias="Weather Bot",
    )
    (installer,) = await _installers(session, 1)
    await install_via_api(client, installer, app.id, allowed_scopes=["reports"])
    assert await _public_ids(client, installer) == [str(app.id)]

    edited = await client.patch(owned_url(tenant, app.id), json=change, headers=tenant.headers)
    assert edited.status_code == 200, edited.text

    assert await _public_ids(client, installer) == []
    # The existing installation stays; a new organization can no longer find or install it.
    assert await installed_org_ids(session, app.id) == {installer.org_id}
    (newcomer,) = await _installers(session, 1)
    refused = await client.post(
        f"/api/v5/orgs/{newcomer.org_id}/app_installations",
        json={"app_id": str(app.id)},
        headers=newcomer.headers,
    )
    assert refused.status_code == 404
    # Until the operator approves it again (`apps-api admin approve-app`).
    app_id = app.id
    session.expire_all()  # the API changed the row behind this session's objects
    await approve_app(session=session, app_id=app_id)
    assert await _public_ids(client, installer) == [str(app_id)]


async def test_other_edits_keep_the_approval(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    app = await make_app(
        session,
        tenant.organization,
        name="Approved",
        is_available_to_anyone=True,
        is_approved=True,
        required_scopes=["reports"],
    )
    for change in (
        {"allowed_redirect_uris": ["https://bot.example.com/back"]},
        # The same values again are no change.
        {"name": "Approved", "required_scopes": ["reports"]},
        {"terms_of_service_url": app.terms_of_service_url, "is_app_user_required": False},
    ):
        edited = await client.patch(owned_url(tenant, app.id), json=change, headers=tenant.headers)
        assert edited.status_code == 200, edited.text
        assert await _public_ids(client, tenant) == [str(app.id)], change


async def test_is_available_to_network_is_an_input_alias_of_partners(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    created = await client.post(
        owned_url(provider), json=app_payload(is_available_to_network=True), headers=provider.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["is_available_to_partners"] is True and "is_available_to_network" not in body
    patched = await client.patch(
        owned_url(provider, body["id"]), json={"is_available_to_network": False}, headers=provider.headers
    )
    assert patched.status_code == 200
    assert (
        patched.json()["is_available_to_partners"] is False
        and "is_available_to_network" not in patched.json()
    )
    fetched = await client.get(owned_url(provider, body["id"]), headers=provider.headers)
    assert "is_available_to_network" not in fetched.json()

    same = await client.patch(
        owned_url(provider, body["id"]),
        json={"is_available_to_network": True, "is_available_to_partners": True},
        headers=provider.headers,
    )
    assert same.status_code == 200 and same.json()["is_available_to_partners"] is True
    conflict = await client.patch(
        owned_url(provider, body["id"]),
        json={"is_available_to_network": False, "is_available_to_partners": True},
        headers=provider.headers,
    )
    assert conflict.status_code == 400 and list(conflict.json()["errors"]) == ["is_available_to_network"]

    # The spec's 402 rule names it: without the App provider feature it is refused.
    plain = await make_tenant(session, name="No provider feature", features=["apps"])
    refused = await client.post(
        owned_url(plain), json=app_payload(is_available_to_network=True), headers=plain.headers
    )
    assert refused.status_code == 402
