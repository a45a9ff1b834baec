"""Resource loaders chained after the access checks: 404 for anything the caller may not see."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from apps_api.auth.dependencies import OrgProviderPrincipal
from apps_api.catalog import repository
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound
from apps_api.models import App

AppId = Annotated[uuid.UUID, Path(description="The ID of the app.")]


async def owned_app(session: SessionDep, principal: OrgProviderPrincipal, app_id: AppId) -> App:
    """An app of the caller's organization, with the owned view's embedded objects."""
    app = await repository.get_owned_app(
        session=session, organization_id=principal.organization_id, app_id=app_id
    )
    if app is None:
        raise NotFound("No owned app found with the given ID.")
    return app


OwnedAppDep = Annotated[App, Depends(owned_app)]


async def owned_app_id(session: SessionDep, principal: OrgProviderPrincipal, app_id: AppId) -> uuid.UUID:
    """The id of an app of the caller's organization (one primary-key probe, nothing embedded)."""
    found = await repository.owned_app_id(
        session=session, organization_id=principal.organization_id, app_id=app_id
    )
    if found is None:
        raise NotFound("No owned app found with the given ID.")
    return found


OwnedAppIdDep = Annotated[uuid.UUID, Depends(owned_app_id)]
