"""Every status code of the access checks, in docs/design.md section 4's order."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models.base import utcnow
from tests.fixtures.factories import Tenant, make_app, make_tenant, make_user

PUBLIC = "/api/v5/public_apps"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Token",
        "Token ",
        "Token nope",
        "Bearer nope",
        "Basic dXNlcjpwYXNz",
        "Token a b",
        "GIOSGAPP x",
    ],
)
async def test_missing_or_invalid_credentials_are_401(
    client: httpx.AsyncClient, tenant: Tenant, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get(PUBLIC, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Token"
    assert response.json()["detail"]


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "token", "BEARER"])
async def test_token_and_bearer_schemes_are_accepted(
    client: httpx.AsyncClient, tenant: Tenant, scheme: str
) -> None:
    response = await client.get(PUBLIC, headers={"Authorization": f"{scheme} {tenant.token}"})
    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


async def test_expired_token_is_401(client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant) -> None:
    _, key = await make_user(session, tenant.organization, token_expires_at=utcnow() - timedelta(seconds=1))
    response = await client.get(PUBLIC, headers={"Authorization": f"Token {key}"})
    assert response.status_code == 401


async def test_token_not_yet_expired_works(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    _, key = await make_user(session, tenant.organization, token_expires_at=utcnow() + timedelta(hours=1))
    response = await client.get(PUBLIC, headers={"Authorization": f"Token {key}"})
    assert response.status_code == 200


async def test_revoked_token_is_401(client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant) -> None:
    from sqlalchemy import update

    from apps_api.models import ApiToken

    await session.execute(
        update(ApiToken).where(ApiToken.user_id == tenant.user.id).values(revoked_at=utcnow())
    )
    response = await client.get(PUBLIC, headers=tenant.headers)
    assert response.status_code == 401


async def test_deleted_user_is_401(client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant) -> None:
    tenant.user.deleted_at = utcnow()
    await session.flush()
    response = await client.get(PUBLIC, headers=tenant.headers)
    assert response.status_code == 401


async def test_inactive_subscription_is_403(client: httpx.AsyncClient, session: AsyncSession) -> None:
    lapsed = await make_tenant(session, name="Lapsed")
    lapsed.organization.subscription_active = False
    await session.flush()
    response = await client.get(PUBLIC, headers=lapsed.headers)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your organization does not have an active subscription; "
        "the operator of this service can renew it."
    }


async def test_expired_subscription_is_403(client: httpx.AsyncClient, session: AsyncSession) -> None:
    expired = await make_tenant(session, name="Expired", subscription_days=-1)
    response = await client.get(PUBLIC, headers=expired.headers)
    assert response.status_code == 403
    assert "subscription" in response.json()["detail"]


async def test_subscription_check_comes_before_permission_check(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    lapsed = await make_tenant(session, name="Lapsed", permissions=[], subscription_days=-1)
    response = await client.get(PUBLIC, headers=lapsed.headers)
    assert response.status_code == 403
    assert "subscription" in response.json()["detail"]


async def test_missing_settings_permission_is_403(client: httpx.AsyncClient, session: AsyncSession) -> None:
    reporter = await make_tenant(session, name="Reporters", permissions=["reports", "users"])
    response = await client.get(PUBLIC, headers=reporter.headers)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "You do not have the `settings` permission; your administrator can grant it."
    }


async def test_401_comes_before_400_for_bad_path_parameters(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PUBLIC}/not-a-uuid")
    assert response.status_code == 401


async def test_404_only_after_every_access_check(
    client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
) -> None:
    reporter = await make_tenant(session, name="Reporters", permissions=["reports"])
    app = await make_app(session, tenant.organization)  # exists, but is not public
    assert (await client.get(f"{PUBLIC}/{app.id}", headers=reporter.headers)).status_code == 403
    assert (await client.get(f"{PUBLIC}/{app.id}", headers=tenant.headers)).status_code == 404


async def test_unknown_route_uses_the_error_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v5/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


async def test_a_malformed_organization_id_is_401_without_credentials_then_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """The organization id is parsed by the kind's dependency after the caller (auth/dependencies.py):
    401 first, then the very 400 FastAPI gives for a malformed UUID path parameter."""
    owned = "/api/v5/orgs/not-a-uuid/owned_apps"
    assert (await client.get(owned)).status_code == 401
    assert (await client.post(owned, json={})).status_code == 401
    for response in (
        await client.get(owned, headers=tenant.headers),
        await client.post(owned, json={}, headers=tenant.headers),
    ):
        assert response.status_code == 400
        body = response.json()
        assert list(body["errors"]) == ["path.organization_id"], body
        # The same message as a malformed UUID that FastAPI validates itself (the app id here).
        malformed_app = await client.get(
            f"/api/v5/orgs/{tenant.organization.id}/owned_apps/not-a-uuid", headers=tenant.headers
        )
        assert malformed_app.status_code == 400
        assert body == {
            "detail": malformed_app.json()["detail"],
            "errors": {"path.organization_id": malformed_app.json()["errors"]["path.app_id"]},
        }


@pytest.mark.parametrize("scheme", ["Basic", "GIOSGAPP", "Zzz"])
async def test_a_live_api_token_key_under_another_scheme_is_401(
    client: httpx.AsyncClient, tenant: Tenant, scheme: str
) -> None:
    """An API token key counts only as `Token <key>` or `Bearer <key>`."""
    response = await client.get(PUBLIC, headers={"Authorization": f"{scheme} {tenant.token}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v5/public_apps"),  # SettingsReader
        ("get", "/api/v5/orgs/{organization_id}/installed_apps"),  # OrgSettingsReader
        ("get", "/api/v5/orgs/{organization_id}/owned_apps"),  # ProviderReader
        ("post", "/api/v5/orgs/{organization_id}/owned_apps"),  # ProviderWriter
        ("delete", "/api/v5/orgs/{organization_id}/app_installations/{installation_id}"),  # InstallerWriter
    ],
)
async def test_every_kind_of_route_documents_the_authorization_header_in_openapi(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """The kinds read the header themselves, so generated clients learn of it only from the
    scheme each kind documents."""
    schema = (await client.get("/openapi.json")).json()
    assert schema["paths"][path][method]["security"] == [{"APIKeyHeader": []}]
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "Authorization"
