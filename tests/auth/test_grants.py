"""No grant beyond the granter (issue 24, finding 1): every install path checks the installing
user's own permissions, and an app principal never installs, uninstalls or mints tokens.

On 7159944 an app-user token of an app installed with `settings`, a trigger token, and a user
with only `settings` each installed an app with `settings`, `users` and `reports` (201).
"""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.access_tokens import encode_access_token
from apps_api.installations.service import install_app
from apps_api.models import App, AppInstallation
from apps_api.platform import service as platform
from apps_api.settings import Settings
from tests.fixtures.apps import installations_url
from tests.fixtures.factories import Tenant, make_app, make_tenant
from tests.fixtures.installflow import csrf_of, log_in, make_bot_app, make_installer

ALL = ["reports", "settings", "users"]


async def _installations(session: AsyncSession, app: App) -> int:
    count = await session.scalar(select(func.count()).where(AppInstallation.app_id == app.id))
    return int(count or 0)


async def _app_principals(session: AsyncSession, settings: Settings, tenant: Tenant) -> dict[str, str]:
    """An app installed in the tenant's organization with `settings` only, as each app principal."""
    vendor = await make_tenant(session, name="Vendor")
    app = await make_bot_app(session, vendor.organization, required_scopes=["settings"])
    installation = await install_app(
        granter=None,
        session=session,
        organization=tenant.organization,
        app=app,
        actor=tenant.user,
        allowed_scopes=["settings"],
    )
    assert installation.app_user_id is not None
    _, key = await platform.create_token(
        session=session, user_id=installation.app_user_id, app_installation_id=installation.id
    )
    trigger = encode_access_token(
        secret_key=settings.secret_key,
        user_id=tenant.user.id,
        organization_id=tenant.org_id,
        app_id=app.id,
        installation_id=installation.id,
    )
    return {"app_user_token": f"Token {key}", "trigger_token": f"GIOSGAPP {trigger} {app.secret}"}


async def test_no_app_principal_installs_uninstalls_or_mints(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, tenant: Tenant
) -> None:
    target = await make_app(
        session, tenant.organization, name="Wants everything", required_scopes=["settings"]
    )
    owned = await make_app(
        session,
        tenant.organization,
        name="Owned",
        is_app_user_required=True,
        app_user_default_first_name="B",
        app_user_default_last_name="B",
    )
    existing = await install_app(
        granter=None, session=session, organization=tenant.organization, app=owned, actor=tenant.user
    )
    for kind, authorization in (await _app_principals(session, settings, tenant)).items():
        headers = {"Authorization": authorization}
        created = await client.post(
            installations_url(tenant), json={"app_id": str(target.id), "allowed_scopes": ALL}, headers=headers
        )
        assert created.status_code == 403, (kind, created.text)
        assert "Apps cannot install" in created.json()["detail"]
        removed = await client.delete(installations_url(tenant, existing.id), headers=headers)
        assert removed.status_code == 403, (kind, removed.text)
        minted = await client.post(
            f"/api/v5/orgs/{tenant.org_id}/owned_apps/{owned.id}/installations/{existing.id}/app_user_tokens",
            json={},
            headers=headers,
        )
        assert minted.status_code == 403, (kind, minted.text)
    assert await _installations(session, target) == 0
    assert await _installations(session, owned) == 1


async def test_a_user_grants_only_the_permissions_they_hold(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    admin = await make_tenant(session, name="Settings only", permissions=["settings"], features=["apps"])
    app = await make_app(session, admin.organization, name="Private", required_scopes=["settings"])

    refused = await client.post(
        installations_url(admin), json={"app_id": str(app.id), "allowed_scopes": ALL}, headers=admin.headers
    )
    assert refused.status_code == 403, refused.text
    assert "permissions you do not have: reports, users" in refused.json()["detail"]
    assert await _installations(session, app) == 0

    granted = await client.post(
        installations_url(admin),
        json={"app_id": str(app.id), "allowed_scopes": ["settings"]},
        headers=admin.headers,
    )
    assert granted.status_code == 201, granted.text
    assert granted.json()["allowed_scopes"] == ["settings"]


async def test_the_default_grant_is_checked_too(client: httpx.AsyncClient, session: AsyncSession) -> None:
    """No `allowed_scopes`: the app's required scopes, which the installer must hold as well."""
    admin = await make_tenant(session, name="Settings only", permissions=["settings"], features=["apps"])
    vendor = await make_tenant(session, name="Vendor")
    app = await make_bot_app(session, vendor.organization, required_scopes=["settings", "users"])
    refused = await client.post(installations_url(admin), json={"app_id": str(app.id)}, headers=admin.headers)
    assert refused.status_code == 403, refused.text
    assert "permissions you do not have: users" in refused.json()["detail"]
    assert await _installations(session, app) == 0


async def test_the_install_flow_checks_the_grant(client: httpx.AsyncClient, session: AsyncSession) -> None:
    vendor = await make_tenant(session, name="Vendor")
    app = await make_bot_app(session, vendor.organization, required_scopes=["settings", "users"])
    installer = await make_installer(session, permissions=["settings"])
    page = await log_in(client, app.id, installer.user.email)
    response = await client.post(
        f"/apps/{app.id}/install",
        data={"csrf_token": csrf_of(page), "next": "/settings/apps", "first_name": "Bot", "last_name": "B"},
    )
    assert response.status_code == 403, response.text
    assert "permissions you do not have: users" in response.text
    assert await _installations(session, app) == 0
