"""Builders and calls shared by the catalogue and installation tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.models import App, AppInstallation, AppShare, Event
from apps_api.platform import service as platform
from tests.factories import Tenant, make_app


def app_payload(**overrides: Any) -> dict[str, Any]:
    """A valid owned-app payload with every required attribute."""
    payload: dict[str, Any] = {
        "name": "Chat bot",
        "description": "Answers visitors",
        "is_app_user_required": True,
        "app_user_default_first_name": "Chatty",
        "app_user_default_last_name": "Bot",
        "terms_of_service_url": "https://bot.example.com/tos",
        "privacy_policy_url": "https://bot.example.com/privacy",
    }
    payload.update(overrides)
    return payload


def owned_url(tenant: Tenant, app_id: uuid.UUID | str | None = None, suffix: str = "") -> str:
    base = f"/api/v5/orgs/{tenant.org_id}/owned_apps"
    return (f"{base}/{app_id}" if app_id is not None else base) + suffix


def installations_url(tenant: Tenant, installation_id: uuid.UUID | str | None = None) -> str:
    base = f"/api/v5/orgs/{tenant.org_id}/app_installations"
    return f"{base}/{installation_id}" if installation_id is not None else base


async def create_app_via_api(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = await client.post(owned_url(tenant), json=app_payload(**overrides), headers=tenant.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def install_via_api(
    client: httpx.AsyncClient, tenant: Tenant, app_id: uuid.UUID | str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        installations_url(tenant), json={"app_id": str(app_id), **body}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    installed: dict[str, Any] = response.json()
    return installed


async def partners(session: AsyncSession, a: Tenant, b: Tenant) -> None:
    await platform.add_partnership(session=session, a=a.org_id, b=b.org_id)


async def share(session: AsyncSession, app: App, tenant: Tenant) -> AppShare:
    row = AppShare(app_id=app.id, organization_id=tenant.org_id)
    session.add(row)
    await session.flush()
    return row


async def partner_app(session: AsyncSession, owner: Tenant, **attributes: Any) -> App:
    return await make_app(session, owner.organization, is_available_to_partners=True, **attributes)


async def installed_org_ids(session: AsyncSession, app_id: uuid.UUID | str) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(AppInstallation.organization_id).where(AppInstallation.app_id == uuid.UUID(str(app_id)))
    )
    return set(rows.all())


async def installation_count(session: AsyncSession, app_id: uuid.UUID | str) -> int:
    count = await session.scalar(
        select(App.installation_count)
        .where(App.id == uuid.UUID(str(app_id)))
        .execution_options(populate_existing=True)
    )
    assert count is not None
    return count


async def actual_installations(session: AsyncSession, app_id: uuid.UUID | str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(AppInstallation)
        .where(AppInstallation.app_id == uuid.UUID(str(app_id)))
    )
    return int(count or 0)


async def events(
    session: AsyncSession, *, organizations: list[uuid.UUID] | None = None, **where: Any
) -> list[Event]:
    """Event rows, oldest first, filtered by column values (and optionally by organizations)."""
    statement = select(Event).order_by(Event.id)
    if organizations is not None:
        statement = statement.where(Event.organization_id.in_(organizations))
    for column, value in where.items():
        statement = statement.where(getattr(Event, column) == value)
    return list((await session.scalars(statement)).all())
