from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.factories import Tenant, make_app, make_tenant, minutes_ago

PUBLIC_APP_ATTRIBUTES = {
    "id",
    "name",
    "description",
    "owned_by_organization_id",
    "owned_by_organization",
    "icon_asset_id",
    "icon_asset",
    "is_app_user_required",
    "required_scopes",
    "installation_count",
    "created_at",
    "updated_at",
}


async def test_lists_only_approved_public_apps_with_spec_attributes(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    provider = await make_tenant(session, name="Provider", features=["apps", "app_provider"])
    from apps_api.platform.service import create_asset

    icon = await create_asset(
        session=session, organization_id=provider.org_id, url="https://cdn.example.com/i.png", width=64
    )
    public = await make_app(
        session,
        provider.organization,
        name="Public bot",
        is_available_to_anyone=True,
        is_approved=True,
        icon_asset_id=icon.id,
        required_scopes=["reports"],
        created_at=minutes_ago(2),
    )
    await make_app(session, provider.organization, name="Unapproved", is_available_to_anyone=True)
    await make_app(session, provider.organization, name="Partner only", is_available_to_partners=True)

    response = await client.get("/api/v5/public_apps", headers=tenant.headers)

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["previous"] is None
    assert [item["id"] for item in body["results"]] == [str(public.id)]
    item = body["results"][0]
    assert set(item) == PUBLIC_APP_ATTRIBUTES
    assert "secret" not in item
    assert item["owned_by_organization"] == {"id": str(provider.org_id), "name": "Provider"}
    assert item["icon_asset"]["url"] == "https://cdn.example.com/i.png"
    assert item["icon_asset"]["width"] == 64
    assert item["required_scopes"] == ["reports"]
    assert item["created_at"].endswith("Z")


async def test_retrieve_public_app_and_404_for_non_public(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    public = await make_app(session, tenant.organization, is_available_to_anyone=True, is_approved=True)
    private = await make_app(session, tenant.organization)
    # Offered to anyone but not (yet) approved by the platform: not public.
    unapproved = await make_app(session, tenant.organization, is_available_to_anyone=True)

    found = await client.get(f"/api/v5/public_apps/{public.id}", headers=tenant.headers)
    assert found.status_code == 200
    assert found.json()["id"] == str(public.id)
    assert set(found.json()) == PUBLIC_APP_ATTRIBUTES

    for missing in (private.id, unapproved.id, uuid.uuid4()):
        response = await client.get(f"/api/v5/public_apps/{missing}", headers=tenant.headers)
        assert response.status_code == 404
        assert response.json() == {"detail": "No public app found with the given ID."}


async def test_bad_app_id_is_400_naming_the_parameter(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/api/v5/public_apps/not-a-uuid", headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["errors"] == {"path.app_id": ["Must be a valid UUID."]}
