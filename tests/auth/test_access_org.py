"""The organization-scoped checks (403 organization, 403 settings) on a route built with them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.dependencies import OrgSettingsReader
from tests.fixtures.factories import Tenant, make_tenant

SETTINGS_MISSING = "You do not have the `settings` permission; your administrator can grant it."
SUBSCRIPTION_ENDED = (
    "Your organization does not have an active subscription; the operator of this service can renew it."
)


@pytest.fixture
def org_route_app(app: Any) -> Any:
    router = APIRouter()

    @router.get("/test/orgs/{organization_id}/whoami")
    async def whoami(reader: OrgSettingsReader) -> dict[str, str]:
        principal = reader.principal
        return {"organization_id": str(principal.organization_id), "user_id": str(principal.user_id)}

    app.include_router(router)
    return app


async def test_own_organization_with_settings_is_allowed(
    org_route_app: Any, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    response = await client.get(f"/test/orgs/{tenant.org_id}/whoami", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json() == {"organization_id": str(tenant.org_id), "user_id": str(tenant.user.id)}


async def test_another_organization_is_403(
    org_route_app: Any, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await client.get(f"/test/orgs/{other_tenant.org_id}/whoami", headers=tenant.headers)
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have access to this organization."}


async def test_organization_check_comes_before_permission_check(
    org_route_app: Any, client: httpx.AsyncClient, session: AsyncSession, other_tenant: Tenant
) -> None:
    reporter = await make_tenant(session, name="Reporters", permissions=["reports"])
    foreign = await client.get(f"/test/orgs/{other_tenant.org_id}/whoami", headers=reporter.headers)
    assert foreign.json()["detail"] == "You do not have access to this organization."
    own = await client.get(f"/test/orgs/{reporter.org_id}/whoami", headers=reporter.headers)
    assert own.status_code == 403
    assert own.json()["detail"] == SETTINGS_MISSING


async def test_subscription_check_comes_before_organization_check(
    org_route_app: Any, client: httpx.AsyncClient, session: AsyncSession, other_tenant: Tenant
) -> None:
    lapsed = await make_tenant(session, name="Lapsed", subscription_days=-1)
    response = await client.get(f"/test/orgs/{other_tenant.org_id}/whoami", headers=lapsed.headers)
    assert response.json()["detail"] == SUBSCRIPTION_ENDED


async def test_bad_organization_id_is_400_after_authentication(
    org_route_app: Any, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    assert (await client.get("/test/orgs/xyz/whoami")).status_code == 401
    response = await client.get("/test/orgs/xyz/whoami", headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["errors"] == {"path.organization_id": ["Must be a valid UUID."]}
