"""Queries for apps; each turns "what may this caller see" into a WHERE clause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from apps_api.apps.visibility import is_partner_app_of, is_public
from apps_api.models import App, AppInstallation, AppShare


def app_view_options() -> Sequence[Any]:
    """Eager loads for the embedded objects every app view shows."""
    return (
        joinedload(App.owned_by_organization),
        joinedload(App.icon_asset),
    )


def owned_app_options() -> Sequence[Any]:
    """Eager loads for the owned view, which also embeds who created and updated the app."""
    return (
        *app_view_options(),
        joinedload(App.created_by_user),
        joinedload(App.updated_by_user),
    )


async def _one(session: AsyncSession, statement: Select[Any]) -> App | None:
    app: App | None = (
        (await session.execute(statement.execution_options(populate_existing=True)))
        .unique()
        .scalar_one_or_none()
    )
    return app


def public_apps() -> Select[Any]:
    return select(App).where(is_public())


async def get_public_app(*, session: AsyncSession, app_id: uuid.UUID) -> App | None:
    """One approved public app, with its embedded objects."""
    return await _one(session, public_apps().where(App.id == app_id).options(*app_view_options()))


def partner_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    """Apps of the organization's partners that are available to partners or shared with it."""
    return select(App).where(is_partner_app_of(organization_id))


async def get_partner_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = partner_apps(organization_id=organization_id).where(App.id == app_id)
    return await _one(session, statement.options(*app_view_options()))


def owned_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    return select(App).where(App.owned_by_organization_id == organization_id)


async def get_owned_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = owned_apps(organization_id=organization_id).where(App.id == app_id)
    return await _one(session, statement.options(*owned_app_options()))


async def owned_app_id(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> uuid.UUID | None:
    """The app's id if the organization owns it; no embedded objects (routes that only need the id)."""
    found: uuid.UUID | None = await session.scalar(
        select(App.id).where(App.owned_by_organization_id == organization_id, App.id == app_id)
    )
    return found


def installed_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    """Apps installed in the organization (one installation per app, so no duplicates)."""
    return select(App).join(
        AppInstallation,
        and_(AppInstallation.app_id == App.id, AppInstallation.organization_id == organization_id),
    )


async def get_installed_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = installed_apps(organization_id=organization_id).where(App.id == app_id)
    return await _one(session, statement.options(*app_view_options()))


def app_shares(*, app_id: uuid.UUID) -> Select[Any]:
    return select(AppShare).where(AppShare.app_id == app_id)


def app_share_options() -> Sequence[Any]:
    return (joinedload(AppShare.organization),)


async def get_app_share(*, session: AsyncSession, app_id: uuid.UUID, share_id: uuid.UUID) -> AppShare | None:
    statement = app_shares(app_id=app_id).where(AppShare.id == share_id).options(*app_share_options())
    share: AppShare | None = (await session.execute(statement)).unique().scalar_one_or_none()
    return share
