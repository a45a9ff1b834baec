"""Every trigger's URL: `trigger_location()`, its token and app user code minted now.

Browser redirects (install flow, console) and the worker's GETs alike come from here.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.triggers.tokens import trigger_perms, trigger_request_url
from apps_api.identity.service import issue_app_user_code
from apps_api.models import AppInstallation, User
from apps_api.settings import Settings

# The installing organization's console page of an installed app (console/installed.html's row
# anchors): the `redirect_uri` of a trigger no browser follows.
INSTALLED_APP_PAGE = "/console/installed#installation-{installation_id}"


def installed_app_page(*, base_url: str, installation_id: uuid.UUID) -> str:
    """The absolute URL of an installed app's console page on this service's public base URL."""
    return base_url.rstrip("/") + INSTALLED_APP_PAGE.format(installation_id=installation_id)


async def trigger_location(
    *,
    session: AsyncSession,
    settings: Settings,
    type_: str,
    trigger_url: str,
    app_secret: str,
    app_id: uuid.UUID,
    organization_id: uuid.UUID,
    installation_id: uuid.UUID | None,
    actor_user_id: uuid.UUID | None,
    app_user_id: uuid.UUID | None,
    redirect_uri: str | None,
) -> str:
    """The URL of one trigger, its short-lived credentials minted now (in this transaction).

    `user_id` is the actor only while they are a live user of the installing organization
    (the owner uninstalling from another organization is not: null). While the installation
    exists (every trigger but `uninstall`), the `token` carries the user's permissions ∩ its
    scopes and an app user gets a fresh single-use `app_user_code`.
    """
    installation = (
        await session.get(AppInstallation, installation_id)
        if installation_id is not None and type_ != "uninstall"
        else None
    )
    user_id, perms = None, list[str]()
    if actor_user_id is not None:
        permissions = (
            await session.execute(
                select(User.permissions).where(
                    User.id == actor_user_id,
                    User.organization_id == organization_id,
                    User.deleted_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        if permissions is not None:
            user_id = actor_user_id
            perms = trigger_perms(permissions, installation.allowed_scopes if installation else ())
    app_user_code = None
    if installation is not None and installation.app_user_id is not None:
        app_user_id = installation.app_user_id
        app_user_code = await issue_app_user_code(session=session, installation=installation)
    return trigger_request_url(
        trigger_url=trigger_url,
        type_=type_,
        app_secret=app_secret,
        secret_key=settings.secret_key,
        public_base_url=settings.public_base_url,
        app_id=app_id,
        organization_id=organization_id,
        installation_id=installation_id,
        user_id=user_id,
        perms=perms,
        app_user_id=app_user_id,
        app_user_code=app_user_code,
        redirect_uri=redirect_uri,
    )
