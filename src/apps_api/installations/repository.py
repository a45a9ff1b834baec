"""Queries for installations: the installing organization's and the app owner's."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.installations.service import installation_options
from apps_api.models import AppInstallation


def organization_installations(*, organization_id: uuid.UUID) -> Select[Any]:
    """Installations in the organization."""
    return select(AppInstallation).where(AppInstallation.organization_id == organization_id)


def app_installations(*, app_id: uuid.UUID) -> Select[Any]:
    """Installations of one app, in any organization (the owner's view)."""
    return select(AppInstallation).where(AppInstallation.app_id == app_id)


async def _one(session: AsyncSession, statement: Select[Any]) -> AppInstallation | None:
    statement = statement.options(*installation_options()).execution_options(populate_existing=True)
    installation: AppInstallation | None = (await session.execute(statement)).unique().scalar_one_or_none()
    return installation


async def get_organization_installation(
    *, session: AsyncSession, organization_id: uuid.UUID, installation_id: uuid.UUID
) -> AppInstallation | None:
    statement = organization_installations(organization_id=organization_id)
    return await _one(session, statement.where(AppInstallation.id == installation_id))


async def get_app_installation(
    *, session: AsyncSession, app_id: uuid.UUID, installation_id: uuid.UUID
) -> AppInstallation | None:
    statement = app_installations(app_id=app_id)
    return await _one(session, statement.where(AppInstallation.id == installation_id))


async def get_app_installation_in(
    *, session: AsyncSession, app_id: uuid.UUID, organization_id: uuid.UUID
) -> AppInstallation | None:
    statement = app_installations(app_id=app_id)
    return await _one(session, statement.where(AppInstallation.organization_id == organization_id))
