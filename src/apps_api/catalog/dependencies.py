"""Resource loaders chained after the access checks: 404 for anything the caller may not see."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from apps_api.auth.dependencies import ProviderReader, ProviderWriter
from apps_api.catalog import repository
from apps_api.kit.driver import ReadConnection
from apps_api.kit.errors import NotFound
from apps_api.models import App

AppId = Annotated[uuid.UUID, Path(description="The ID of the app.")]
_NOT_OWNED = "No owned app found with the given ID."


async def owned_app(writer: ProviderWriter, app_id: AppId) -> App:
    """An app of the caller's organization, with the owned view's embedded objects (writes)."""
    app = await repository.get_owned_app(
        session=writer.session, organization_id=writer.principal.organization_id, app_id=app_id
    )
    if app is None:
        raise NotFound(_NOT_OWNED)
    return app


OwnedAppDep = Annotated[App, Depends(owned_app)]


async def owned_app_id(writer: ProviderWriter, app_id: AppId) -> uuid.UUID:
    """The id of an app of the caller's organization (one primary-key probe, nothing embedded)."""
    found = await repository.owned_app_id(
        db=writer.session, organization_id=writer.principal.organization_id, app_id=app_id
    )
    if found is None:
        raise NotFound(_NOT_OWNED)
    return found


OwnedAppIdDep = Annotated[uuid.UUID, Depends(owned_app_id)]


async def read_owned_app_id(reader: ProviderReader, app_id: AppId) -> uuid.UUID:
    """`owned_app_id` for a GET, on its read connection."""
    await require_owned_app(db=reader.db, organization_id=reader.principal.organization_id, app_id=app_id)
    return app_id


async def require_owned_app(*, db: ReadConnection, organization_id: uuid.UUID, app_id: uuid.UUID) -> None:
    """404 unless the organization owns the app: for a list that found no row under
    `repository.owned_by_caller()` (is the list empty, or is the app not the caller's?)."""
    if await repository.owned_app_id(db=db, organization_id=organization_id, app_id=app_id) is None:
        raise NotFound(_NOT_OWNED)


ReadOwnedAppId = Annotated[uuid.UUID, Depends(read_owned_app_id)]
