"""The events of an installation: the installing organization's and the app owner's."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery import channels
from apps_api.delivery.events import Action, Change, emit_many
from apps_api.installations.schemas import AppInstallation as AppInstallationView
from apps_api.kit.schemas import UserEmbed
from apps_api.models import AppInstallation


def installation_changes(
    *, view: dict[str, Any], owner_id: uuid.UUID, app_user: dict[str, Any] | None
) -> list[Change]:
    """The events of an installation's view: the installing organization's and the owner's."""
    # The owner's view has the same attributes (test_events_of_install_and_uninstall checks
    # it), and the installed app's view is the installation's embedded `app`.
    organization_id, app_id = view["organization_id"], view["app_id"]
    changes = [
        Change(
            organization_id,
            channels.APP_INSTALLATIONS.channel(organization_id=organization_id),
            view["id"],
            view,
            channels.APP_INSTALLATIONS.scope,
        ),
        Change(
            organization_id,
            channels.INSTALLED_APPS.channel(organization_id=organization_id),
            app_id,
            view["app"],
            channels.INSTALLED_APPS.scope,
        ),
        Change(
            owner_id,
            channels.OWNED_APP_INSTALLATIONS.channel(app_organization_id=owner_id, app_id=app_id),
            view["id"],
            view,
            channels.OWNED_APP_INSTALLATIONS.scope,
        ),
    ]
    if app_user is not None:
        changes.append(
            Change(
                organization_id,
                channels.USERS.channel(organization_id=organization_id),
                app_user["id"],
                app_user,
                channels.USERS.scope,
            )
        )
    return changes


async def emit_installation_events(
    *, session: AsyncSession, installation: AppInstallation, action: Action, actor_user_id: uuid.UUID | None
) -> None:
    """The events of a loaded installation, in one INSERT."""
    view = AppInstallationView.model_validate(installation).model_dump(mode="json")
    app_user = (
        None if installation.app_user is None else UserEmbed.of(installation.app_user).model_dump(mode="json")
    )
    changes = installation_changes(
        view=view, owner_id=installation.app.owned_by_organization_id, app_user=app_user
    )
    await emit_many(session=session, changes=changes, action=action, actor_user_id=actor_user_id)
