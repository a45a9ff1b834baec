"""Builders and page helpers for the install web flow, /identity/token and GIOSGAPP tests."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import App, AppInstallation, Organization
from apps_api.platform import service
from tests.factories import Tenant, make_app, make_tenant

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def unique_email(prefix: str = "installer") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def make_installer(
    session: AsyncSession,
    *,
    name: str = "Installer Org",
    features: list[str] | None = None,
    permissions: list[str] | None = None,
    subscription_days: int | None = None,
) -> Tenant:
    """An organization and a user who logs in with `PASSWORD` (settings permission by default)."""
    return await make_tenant(
        session,
        name=name,
        features=features if features is not None else ["apps"],
        permissions=permissions,
        subscription_days=subscription_days,
        email=unique_email(),
        password=PASSWORD,
    )


async def make_public_app(session: AsyncSession, owner: Organization, **attributes: Any) -> App:
    """An approved app available to anyone, with an icon and required scopes."""
    icon = await service.create_asset(
        session=session, organization_id=owner.id, url="https://cdn.example.com/icons/bot.png"
    )
    values: dict[str, Any] = {
        "name": "Helpful Bot",
        "description": "Answers your visitors' questions.",
        "is_available_to_anyone": True,
        "is_approved": True,
        "icon_asset_id": icon.id,
        "required_scopes": ["settings", "users"],
    }
    values.update(attributes)
    return await make_app(session, owner, **values)


async def make_bot_app(session: AsyncSession, owner: Organization, **attributes: Any) -> App:
    """A public app that needs an app user, with default names."""
    values: dict[str, Any] = {
        "is_app_user_required": True,
        "app_user_default_first_name": "Helpful",
        "app_user_default_last_name": "Bot",
        "app_user_default_alias": "helper",
    }
    values.update(attributes)
    return await make_public_app(session, owner, **values)


def csrf_of(response: httpx.Response) -> str:
    match = CSRF.search(response.text)
    assert match is not None, response.text
    return match.group(1)


def install_url(app_id: uuid.UUID | str, next_: str | None = "/settings/apps") -> str:
    if next_ is None:
        return f"/apps/{app_id}/install"
    return str(httpx.URL(f"/apps/{app_id}/install", params={"next": next_}))


async def log_in(
    client: httpx.AsyncClient, app_id: uuid.UUID, email: str | None, *, next_: str = "/settings/apps"
) -> httpx.Response:
    """Open the install page, log in, follow to the confirmation page; returns that page."""
    login_page = await client.get(install_url(app_id, next_))
    assert login_page.status_code == 200, login_page.text
    response = await client.post(
        f"/apps/{app_id}/install/login",
        data={"csrf_token": csrf_of(login_page), "next": next_, "email": email, "password": PASSWORD},
    )
    assert response.status_code == 303, response.text
    return await client.get(response.headers["location"])


def query_of(location: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(location).query).items()}


async def install_directly(session: AsyncSession, tenant: Tenant, app: App) -> AppInstallation:
    """Install through the installations service (for token tests that skip the web flow)."""
    from apps_api.installations.service import install_app

    return await install_app(
        granter=None, session=session, organization=tenant.organization, app=app, actor=tenant.user
    )


async def issue_code(session: AsyncSession, installation: AppInstallation) -> str:
    from apps_api.identity.service import issue_app_user_code

    return await issue_app_user_code(session=session, installation=installation)


def token_form(app: App, code: str | None, /, **overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": str(app.id),
        "client_secret": app.secret,
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


async def delete_organizations(engine: Any, organization_ids: list[uuid.UUID]) -> None:
    """Clean up committed test data: the organizations (cascading) and their events."""
    from sqlalchemy import delete

    from apps_api.models import Event

    async with AsyncSession(engine) as cleanup:
        await cleanup.execute(delete(Event).where(Event.organization_id.in_(organization_ids)))
        await cleanup.execute(delete(Organization).where(Organization.id.in_(organization_ids)))
        await cleanup.commit()
