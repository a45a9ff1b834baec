"""App shares: an owner shares an app with one partner organization."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.fixtures.apps import owned_url, partners
from tests.fixtures.factories import Tenant, make_app, make_tenant

SHARE_ATTRIBUTES = {"id", "app_id", "organization_id", "organization", "created_at"}


async def test_share_lifecycle(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    third = await make_tenant(session, name="Third")
    await partners(session, tenant, other_tenant)
    await partners(session, tenant, third)
    app = await make_app(session, tenant.organization)
    url = owned_url(tenant, app.id, "/shares")

    created = await client.post(
        url, json={"organization_id": str(other_tenant.org_id)}, headers=tenant.headers
    )
    second = await client.post(url, json={"organization_id": str(third.org_id)}, headers=tenant.headers)

    assert created.status_code == 201, created.text
    share = created.json()
    assert set(share) == SHARE_ATTRIBUTES
    assert share["app_id"] == str(app.id)
    assert share["organization"] == {"id": str(other_tenant.org_id), "name": "Globex"}
    listed = await client.get(url, headers=tenant.headers)
    assert [item["id"] for item in listed.json()["results"]] == [second.json()["id"], share["id"]]
    assert (await client.get(f"{url}/{share['id']}", headers=tenant.headers)).json() == share
    # The partner now sees the app among its partner apps.
    seen = await client.get(
        f"/api/v5/orgs/{other_tenant.org_id}/partner_apps/{app.id}", headers=other_tenant.headers
    )
    assert seen.status_code == 200

    duplicate = await client.post(
        url, json={"organization_id": str(other_tenant.org_id)}, headers=tenant.headers
    )
    assert duplicate.status_code == 409

    assert (await client.delete(f"{url}/{share['id']}", headers=tenant.headers)).status_code == 204
    assert (await client.get(f"{url}/{share['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.delete(f"{url}/{share['id']}", headers=tenant.headers)).status_code == 404
    hidden = await client.get(
        f"/api/v5/orgs/{other_tenant.org_id}/partner_apps/{app.id}", headers=other_tenant.headers
    )
    assert hidden.status_code == 404


async def test_share_refusals(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = await make_app(session, tenant.organization)
    url = owned_url(tenant, app.id, "/shares")
    for organization_id in (other_tenant.org_id, tenant.org_id, uuid.uuid4()):
        response = await client.post(
            url, json={"organization_id": str(organization_id)}, headers=tenant.headers
        )
        assert response.status_code == 400
        assert response.json()["errors"] == {
            "organization_id": ["Must be a partner organization of the app's owner."]
        }
    missing = await client.post(url, json={}, headers=tenant.headers)
    assert missing.status_code == 400 and list(missing.json()["errors"]) == ["organization_id"]

    # Shares of someone else's app do not exist for the caller.
    foreign = await make_app(session, other_tenant.organization)
    for method in ("GET", "POST"):
        response = await client.request(
            method,
            owned_url(tenant, foreign.id, "/shares"),
            json={"organization_id": str(other_tenant.org_id)},
            headers=tenant.headers,
        )
        assert response.status_code == 404
    await partners(session, tenant, other_tenant)
    share = await client.post(url, json={"organization_id": str(other_tenant.org_id)}, headers=tenant.headers)
    other_app = await make_app(session, tenant.organization)
    wrong_app = owned_url(tenant, other_app.id, f"/shares/{share.json()['id']}")
    assert (await client.get(wrong_app, headers=tenant.headers)).status_code == 404
    assert (await client.delete(wrong_app, headers=tenant.headers)).status_code == 404
