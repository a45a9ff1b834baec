"""Uninstalls that follow another change: an app's audience narrowed, a partnership ended, the Apps
feature lost, an app deleted. Each goes through `service.uninstall()`, one installation at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.catalog.visibility import may_install
from apps_api.installations.service import uninstall
from apps_api.models import App, AppInstallation, AppShare
from apps_api.platform import service as platform_service


async def uninstall_ineligible(
    *,
    session: AsyncSession,
    app_ids: Sequence[uuid.UUID],
    organization_ids: Sequence[uuid.UUID] | None = None,
    actor_user_id: uuid.UUID | None,
) -> list[uuid.UUID]:
    """Uninstall the apps wherever they may no longer be installed; returns the installation ids."""
    if not app_ids:
        return []
    statement = (
        select(AppInstallation)
        .join(App, App.id == AppInstallation.app_id)
        .where(AppInstallation.app_id.in_(app_ids), ~may_install(AppInstallation.organization_id))
        .order_by(AppInstallation.app_id, AppInstallation.id)
    )
    if organization_ids is not None:
        statement = statement.where(AppInstallation.organization_id.in_(organization_ids))
    stale = list((await session.scalars(statement)).all())
    for installation in stale:
        await uninstall(session=session, installation=installation, actor_user_id=actor_user_id)
    return [installation.id for installation in stale]


async def uninstall_everywhere(
    *, session: AsyncSession, app: App, actor_user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Uninstall the app from every organization (before the app is deleted)."""
    installations = list(
        (
            await session.scalars(
                select(AppInstallation).where(AppInstallation.app_id == app.id).order_by(AppInstallation.id)
            )
        ).all()
    )
    for installation in installations:
        await uninstall(session=session, installation=installation, actor_user_id=actor_user_id)
    return [installation.id for installation in installations]


async def uninstall_all_in(
    *, session: AsyncSession, organization_id: uuid.UUID, actor_user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Uninstall every app installed in the organization (it lost the Apps feature)."""
    installations = list(
        (
            await session.scalars(
                select(AppInstallation)
                .where(AppInstallation.organization_id == organization_id)
                .order_by(AppInstallation.app_id, AppInstallation.id)
            )
        ).all()
    )
    for installation in installations:
        await uninstall(session=session, installation=installation, actor_user_id=actor_user_id)
    return [installation.id for installation in installations]


async def end_partnership(
    *, session: AsyncSession, a: uuid.UUID, b: uuid.UUID, actor_user_id: uuid.UUID | None = None
) -> tuple[bool, list[uuid.UUID]]:
    """End a partnership: drop the shares between the two and uninstall what either may no longer install.

    Returns (whether a partnership existed, the ids of the installations removed).
    """
    await platform_service.get_organization(session=session, organization_id=a)
    await platform_service.get_organization(session=session, organization_id=b)
    app_ids = list(
        (
            await session.scalars(
                select(App.id)
                .where(App.owned_by_organization_id.in_((a, b)))
                .order_by(App.id)
                .with_for_update(key_share=True)
            )
        ).all()
    )
    removed = await platform_service.remove_partnership(session=session, a=a, b=b)
    for owner, partner in ((a, b), (b, a)):
        await session.execute(
            delete(AppShare).where(
                AppShare.organization_id == partner,
                AppShare.app_id.in_(select(App.id).where(App.owned_by_organization_id == owner)),
            )
        )
    uninstalled: list[uuid.UUID] = []
    for owner, partner in ((a, b), (b, a)):
        owned = select(App.id).where(App.owned_by_organization_id == owner, App.id.in_(app_ids))
        owned_ids = list((await session.scalars(owned)).all())
        uninstalled += await uninstall_ineligible(
            session=session, app_ids=owned_ids, organization_ids=[partner], actor_user_id=actor_user_id
        )
    return removed, uninstalled
