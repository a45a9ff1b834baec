"""Trigger requests the worker sends: `install` on an API install and `uninstall`, as delivery rows.

Recorded in the change's transaction (the outbox), then sent like webhooks (retries, log
entries, SSRF guard); each attempt's URL is `location.trigger_location()`'s, minted then.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.outbox import schedule_delivery
from apps_api.delivery.triggers.location import installed_app_page
from apps_api.models import App, AppInstallation
from apps_api.settings import get_settings


def installations_channel(*, owner_id: uuid.UUID, app_id: uuid.UUID) -> str:
    return f"/api/v5/orgs/{owner_id}/owned_apps/{app_id}/installations"


def has_trigger(trigger_conditions: list[str] | None, trigger_url: str | None, condition: str) -> bool:
    return condition in (trigger_conditions or []) and bool(trigger_url)


async def _schedule_trigger(
    *,
    session: AsyncSession,
    type_: Literal["install", "uninstall"],
    app_id: uuid.UUID,
    owner_id: uuid.UUID,
    trigger_url: str,
    secret: str,
    installation_id: uuid.UUID,
    organization_id: uuid.UUID,
    app_user_id: uuid.UUID | None,
    actor_user_id: uuid.UUID | None,
    redirect_uri: str | None,
) -> None:
    """Record (in this transaction) `GET trigger_url?type=<type_>&data=<JWT>…` for the worker to send."""
    # What the trigger names; its JWTs and app user code are minted when each attempt is sent
    # (`trigger_location`), so a retry hours later carries fresh ones.
    claims: dict[str, Any] = {
        "app_id": str(app_id),
        "organization_id": str(organization_id),
        "installation_id": str(installation_id),
        "user_id": str(actor_user_id) if actor_user_id else None,
        "app_user_id": str(app_user_id) if app_user_id else None,
    }
    await schedule_delivery(
        session=session,
        kind="trigger",
        app_id=app_id,
        organization_id=owner_id,
        installation_id=installation_id,
        target_organization_id=organization_id,
        app_user_id=app_user_id,
        method="GET",
        endpoint_url=trigger_url,
        channel=installations_channel(owner_id=owner_id, app_id=app_id),
        action="added" if type_ == "install" else "removed",
        resource_id=str(installation_id),
        payload={"type": type_, "claims": claims, "redirect_uri": redirect_uri},
        # A copy, so the trigger can still be signed after the app is deleted.
        signing_secret=secret,
        # Retried on the webhook schedule (APPS_API_WEBHOOK_RETRY_SCHEDULE), whatever its length.
        max_attempts=get_settings().max_delivery_attempts,
    )


async def schedule_install_trigger(
    *,
    session: AsyncSession,
    app: Any,
    installation_id: uuid.UUID,
    organization_id: uuid.UUID,
    app_user_id: uuid.UUID | None,
    actor_user_id: uuid.UUID | None,
    base_url: str | None = None,
) -> None:
    """If the app (a row of `apps`) has the `install` trigger condition and a trigger_url, record the
    server-to-server `GET trigger_url?type=install&data=…&token=…&redirect_uri=…` of an install
    without a browser; `redirect_uri` is the installed app's console page on `base_url`."""
    if not has_trigger(app["trigger_conditions"], app["trigger_url"], "install"):
        return
    await _schedule_trigger(
        session=session,
        type_="install",
        app_id=app["id"],
        owner_id=app["owned_by_organization_id"],
        trigger_url=app["trigger_url"],
        secret=app["secret"],
        installation_id=installation_id,
        organization_id=organization_id,
        app_user_id=app_user_id,
        actor_user_id=actor_user_id,
        redirect_uri=(
            installed_app_page(base_url=base_url, installation_id=installation_id) if base_url else None
        ),
    )


async def schedule_uninstall_trigger(
    *,
    session: AsyncSession,
    app: App,
    installation: AppInstallation,
    actor_user_id: uuid.UUID | None,
) -> None:
    """If the app has the `uninstall` trigger condition and a trigger_url, record (in this transaction) a
    server-to-server GET trigger_url?type=uninstall&data=<JWT> for the worker to send with the webhook retry,
    logging and SSRF guard. Self-contained: it must still be sent after the app itself is deleted."""
    if not has_trigger(app.trigger_conditions, app.trigger_url, "uninstall") or not app.trigger_url:
        return
    await _schedule_trigger(
        session=session,
        type_="uninstall",
        app_id=app.id,
        owner_id=app.owned_by_organization_id,
        trigger_url=app.trigger_url,
        secret=app.secret,
        installation_id=installation.id,
        organization_id=installation.organization_id,
        app_user_id=installation.app_user_id,
        actor_user_id=actor_user_id,
        redirect_uri=None,
    )
