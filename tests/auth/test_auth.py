"""Every status code of the access checks, in docs/design.md section 4's order."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.app_user_tokens.service import mint
from apps_api.auth import service
from apps_api.auth.service import APP_USER, USER, authenticate_token
from apps_api.kit.security import digest
from apps_api.models import Organization, User
from apps_api.models.base import utcnow
from apps_api.platform.service import create_token
from tests.fixtures.factories import Tenant, make_app, make_tenant, make_user
from tests.fixtures.installflow import install_directly, make_bot_app, make_installer

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


# --- auth/service.py: a token key to its principal (survivors of its generated mutants) -----------


async def _person(session: AsyncSession, organization: Organization, user_id: uuid.UUID) -> str:
    """A person of `organization` with this very id, and the key of an API token of theirs."""
    session.add(User(id=user_id, organization_id=organization.id, permissions=["settings"]))
    await session.flush()
    _, key = await create_token(session=session, user_id=user_id)
    return key


async def test_a_users_token_is_the_user_and_attaches_the_sessions_own_objects(
    session: AsyncSession, tenant: Tenant
) -> None:
    principal = await authenticate_token(session=session, key=tenant.token)
    assert principal is not None
    assert (principal.kind, principal.is_app, principal.installation_id) == (USER, False, None)
    # A write asks for the ORM objects: the session's own instances, not copies.
    assert principal.organization is tenant.organization
    assert principal.user is tenant.user


async def test_an_app_users_token_is_the_app_with_its_installations_scopes(session: AsyncSession) -> None:
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    assert installation.allowed_scopes
    _, key = await mint(session=session, installation=installation, expires_at=None)
    principal = await authenticate_token(session=session, key=key)
    assert principal is not None
    assert (principal.kind, principal.is_app) == (APP_USER, True)
    assert (principal.installation_id, principal.app_id) == (installation.id, app.id)
    assert principal.permissions == frozenset(installation.allowed_scopes)


async def test_only_the_installations_own_app_user_is_the_app(session: AsyncSession) -> None:
    """The token's user is an app user only when an installation names exactly that user, in the
    user's own organization: people whose ids sort on either side of the app user's, and people
    another organization's installation names (ids on either side of theirs), are plain users."""
    owner = await make_tenant(session, name="Owner")
    installer = await make_installer(session)
    app = await make_bot_app(session, owner.organization)
    installation = await install_directly(session, installer, app)
    assert installation.app_user_id is not None
    keys = [
        await _person(session, installer.organization, uuid.UUID(int=installation.app_user_id.int + step))
        for step in (-1, 1)
    ]
    # Organizations on both sides of the people's: each names one of them as its app user.
    low, middle, high = sorted(
        [await make_tenant(session, name=name) for name in ("A", "B", "C")], key=lambda t: t.org_id
    )
    for other in (low, high):
        person = uuid.uuid4()
        keys.append(await _person(session, middle.organization, person))
        named = await install_directly(session, other, app)
        named.app_user_id = person
        await session.flush()
    for key in keys:
        principal = await authenticate_token(session=session, key=key)
        assert principal is not None
        assert (principal.kind, principal.is_app, principal.installation_id) == (USER, False, None)


async def test_a_token_is_dead_from_the_instant_it_expires(
    session: AsyncSession, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires_at = utcnow()
    _, key = await make_user(session, tenant.organization, token_expires_at=expires_at)
    monkeypatch.setattr(service, "utcnow", lambda: expires_at - timedelta(microseconds=1))
    assert await authenticate_token(session=session, key=key) is not None
    monkeypatch.setattr(service, "utcnow", lambda: expires_at)
    assert await authenticate_token(session=session, key=key) is None


async def test_a_tokens_principal_is_in_its_users_organization_only(session: AsyncSession) -> None:
    # Organizations on both sides of each other's id: the lookup joins exactly the user's one.
    tenants = sorted([await make_tenant(session, name=name) for name in ("A", "B")], key=lambda t: t.org_id)
    for tenant in tenants:
        rows = await service._TOKEN_PRINCIPAL.fetch(session, digest=digest(tenant.token), now=utcnow())
        assert [row["organization_id"] for row in rows] == [tenant.org_id]
        principal = await authenticate_token(session=session, key=tenant.token)
        assert principal is not None and principal.organization_id == tenant.org_id
