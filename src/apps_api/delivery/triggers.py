"""Server-sent triggers (`install` on an API install, `uninstall`): GETs sent by the worker like webhooks.

Both go through the delivery pipeline (retries, log entries, SSRF guard); a 2xx or 3xx answer
counts as delivered (delivery.classify). In the browser flow the `install` trigger is the
browser's redirect instead (installflow/service.py).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.outbox import schedule_delivery
from apps_api.models import App, AppInstallation


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
    host: str | None,
) -> None:
    """Record (in this transaction) `GET trigger_url?type=<type_>&data=<JWT>` for the worker to send."""
    # The claims of the `data` JWT; it is signed at send time so its `exp` is fresh on every attempt.
    claims: dict[str, Any] = {
        "app_id": str(app_id),
        "organization_id": str(organization_id),
        "installation_id": str(installation_id),
        "user_id": str(actor_user_id) if actor_user_id else None,
        "app_user_id": str(app_user_id) if app_user_id else None,
        "host": host,
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
        payload={"type": type_, "claims": claims},
        # A copy, so the trigger can still be signed after the app is deleted.
        signing_secret=secret,
    )


async def schedule_install_trigger(
    *,
    session: AsyncSession,
    app: Any,
    installation_id: uuid.UUID,
    organization_id: uuid.UUID,
    app_user_id: uuid.UUID | None,
    actor_user_id: uuid.UUID | None,
    host: str | None = None,
) -> None:
    """If the app (a row of `apps`) has the `install` trigger condition and a trigger_url, record the
    server-to-server `GET trigger_url?type=install&data=<JWT>` of an install without a browser."""
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
        host=host,
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
        host=None,
    )
