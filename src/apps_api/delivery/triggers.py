"""The `uninstall` trigger: a server-to-server GET, sent by the worker like a webhook."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.outbox import schedule_delivery
from apps_api.models import App, AppInstallation


def installations_channel(*, owner_id: uuid.UUID, app_id: uuid.UUID) -> str:
    return f"/api/v5/orgs/{owner_id}/owned_apps/{app_id}/installations"


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
    if "uninstall" not in (app.trigger_conditions or []) or not app.trigger_url:
        return
    # The claims of the `data` JWT; it is signed at send time so its `exp` is fresh on every attempt.
    claims = {
        "app_id": str(app.id),
        "organization_id": str(installation.organization_id),
        "installation_id": str(installation.id),
        "user_id": str(actor_user_id) if actor_user_id else None,
        "app_user_id": str(installation.app_user_id) if installation.app_user_id else None,
    }
    await schedule_delivery(
        session=session,
        kind="trigger",
        app_id=app.id,
        organization_id=app.owned_by_organization_id,
        installation_id=installation.id,
        target_organization_id=installation.organization_id,
        app_user_id=installation.app_user_id,
        method="GET",
        endpoint_url=app.trigger_url,
        channel=installations_channel(owner_id=app.owned_by_organization_id, app_id=app.id),
        action="removed",
        resource_id=str(installation.id),
        payload={"type": "uninstall", "claims": claims},
        # A copy, so the trigger can still be signed after the app is deleted.
        signing_secret=app.secret,
    )
