"""Loaders for the app owner's view of its installations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from apps_api.catalog.dependencies import OwnedAppDep
from apps_api.installations import repository
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound
from apps_api.models import AppInstallation

OwnedInstallationId = Annotated[uuid.UUID, Path(description="The ID of the owned app's installation.")]


async def owned_installation(
    session: SessionDep, app: OwnedAppDep, installation_id: OwnedInstallationId
) -> AppInstallation:
    """An installation of an app the caller's organization owns (the provider; never an app)."""
    installation = await repository.get_app_installation(
        session=session, app_id=app.id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No owned app installation found with the given ID.")
    return installation


OwnedInstallationDep = Annotated[AppInstallation, Depends(owned_installation)]
