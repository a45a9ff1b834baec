from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from apps_api.apps import repository
from apps_api.apps.schemas import PublicApp
from apps_api.auth.dependencies import SettingsPrincipal
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound, error_responses
from apps_api.kit.pagination import Page, PageParamsDep, paginate
from apps_api.models import App

router = APIRouter(prefix="/api/v5", tags=["Public apps"])

AppId = Annotated[uuid.UUID, Path(description="The ID of the app.")]


@router.get(
    "/public_apps",
    response_model=Page[PublicApp],
    summary="List public apps",
    responses=error_responses(400, 401, 403),
)
async def list_public_apps(
    request: Request, session: SessionDep, _: SettingsPrincipal, params: PageParamsDep
) -> Page[PublicApp]:
    """Approved apps available to anyone, newest first."""
    rows, next_url, previous_url = await paginate(
        session,
        repository.public_apps(),
        created_at=App.created_at,
        id_=App.id,
        params=params,
        request=request,
        options=repository.app_view_options(),
    )
    return Page(
        next=next_url, previous=previous_url, results=[PublicApp.model_validate(row[0]) for row in rows]
    )


@router.get(
    "/public_apps/{app_id}",
    response_model=PublicApp,
    summary="Retrieve a public app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_public_app(session: SessionDep, _: SettingsPrincipal, app_id: AppId) -> PublicApp:
    app = await repository.get_public_app(session=session, app_id=app_id)
    if app is None:
        raise NotFound("No public app found with the given ID.")
    return PublicApp.model_validate(app)
