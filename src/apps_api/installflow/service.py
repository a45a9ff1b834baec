"""The install web flow's logic: what the pages show, and where the browser goes after installing."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.triggers.location import trigger_location
from apps_api.models import App, AppInstallation, User
from apps_api.settings import Settings

SCOPE_DESCRIPTIONS = {
    "reports": "read your organization's reports",
    "settings": "read and change your organization's settings",
    "users": "read and manage your organization's users",
}


async def is_installed(*, session: AsyncSession, app_id: uuid.UUID, organization_id: uuid.UUID) -> bool:
    installed = await session.scalar(
        select(AppInstallation.id).where(
            AppInstallation.app_id == app_id, AppInstallation.organization_id == organization_id
        )
    )
    return installed is not None


def _web_url(value: str | None) -> str | None:
    """Only http(s) URLs become links or images (never `javascript:`)."""
    if value and value.lower().startswith(("https://", "http://")):
        return value
    return None


def app_view(app: App) -> dict[str, Any]:
    """Plain values the confirmation page shows (readable after a rollback too)."""
    return {
        "id": str(app.id),
        "name": app.name,
        "description": app.description,
        "icon_url": _web_url(app.icon_asset.url if app.icon_asset is not None else None),
        "owner_name": app.owned_by_organization.name,
        "scopes": [
            {"name": scope, "description": SCOPE_DESCRIPTIONS.get(scope, scope)}
            for scope in app.required_scopes
        ],
        "is_app_user_required": app.is_app_user_required,
        "terms_of_service_url": _web_url(app.terms_of_service_url),
        "privacy_policy_url": _web_url(app.privacy_policy_url),
        "trigger_origin": trigger_origin(app),
    }


def has_install_trigger(app: App) -> bool:
    return "install" in app.trigger_conditions and bool(app.trigger_url)


def trigger_origin(app: App) -> str | None:
    """The origin the browser is sent to after installing (for the page's CSP form-action)."""
    if not has_install_trigger(app):
        return None
    parts = urlsplit(app.trigger_url or "")
    if parts.scheme not in ("https", "http") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


async def trigger_redirect(
    *,
    session: AsyncSession,
    settings: Settings,
    type_: str,
    app: App,
    installation: AppInstallation,
    actor: User,
    redirect_uri: str,
) -> str:
    """`trigger_url?type=<type_>&data=<JWT>&token=<JWT>&redirect_uri=<URL>` (docs/design.md section 7):
    the install flow's redirect and the console's `setup` / `manual_*`, built as the worker's."""
    return await trigger_location(
        session=session,
        settings=settings,
        type_=type_,
        trigger_url=app.trigger_url or "",
        app_secret=app.secret,
        app_id=app.id,
        organization_id=installation.organization_id,
        installation_id=installation.id,
        actor_user_id=actor.id,
        app_user_id=installation.app_user_id,
        redirect_uri=redirect_uri,
    )
