"""The installation loader of the app-user token routes, chained after the owned app's: 404 for an
installation of another app."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from apps_api.catalog.dependencies import OwnedAppDep
from apps_api.installations import repository as installations
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound
from apps_api.models import AppInstallation

InstallationId = Annotated[uuid.UUID, Path(description="The ID of the owned app's installation.")]


async def owned_installation(
    session: SessionDep, app: OwnedAppDep, installation_id: InstallationId
) -> AppInstallation:
    """An installation of an app the caller's organization owns (the provider; never an app)."""
    installation = await installations.get_app_installation(
        session=session, app_id=app.id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No owned app installation found with the given ID.")
    return installation


OwnedInstallationDep = Annotated[AppInstallation, Depends(owned_installation)]
