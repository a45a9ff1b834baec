"""The installation loaders of the app-user token routes, chained after the owned app's: 404 for an
installation of another app (the writes' ORM object; the list's keys, on its read connection)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Path
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.dependencies import ProviderReader, ProviderWriter
from apps_api.catalog.dependencies import AppId, OwnedAppIdDep, read_owned_app_id
from apps_api.installations import repository as installations
from apps_api.kit.errors import NotFound
from apps_api.models import AppInstallation

# Not the owned installation routes' description (installations/endpoints.py): two loaders.
InstallationId = Annotated[uuid.UUID, Path(description="The ID of the owned app's installation.")]
_NOT_FOUND = "No owned app installation found with the given ID."


async def find_owned_installation(
    *, session: AsyncSession, app_id: uuid.UUID, installation_id: uuid.UUID
) -> AppInstallation:
    """The installation of the (owned) app, its view's objects loaded; 404 otherwise (API and console)."""
    installation = await installations.get_app_installation(
        session=session, app_id=app_id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound(_NOT_FOUND)
    return installation


async def owned_installation(
    app_id: OwnedAppIdDep, writer: ProviderWriter, installation_id: InstallationId
) -> AppInstallation:
    """An installation of an app the caller's organization owns (the provider; never an app)."""
    # The app before the writer: OpenAPI lists the path parameters in this order (as before).
    return await find_owned_installation(
        session=writer.session, app_id=app_id, installation_id=installation_id
    )


OwnedInstallationDep = Annotated[AppInstallation, Depends(owned_installation)]


async def read_owned_installation(
    installation_id: InstallationId, app_id: AppId, reader: ProviderReader
) -> Any:
    """`owned_installation` for a GET: the installation's `id` and `organization_id` (a record)."""
    rows = await installations.OWNED_INSTALLATION_KEYS.fetch(
        reader.db,
        organization_id=reader.principal.organization_id,
        app_id=app_id,
        installation_id=installation_id,
    )
    if not rows:
        await read_owned_app_id(reader, app_id)  # another organization's app: its own 404
        raise NotFound(_NOT_FOUND)
    return rows[0]


ReadOwnedInstallation = Annotated[Any, Depends(read_owned_installation)]
