"""App installations (the installing organization) and owned app installations (the app owner)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.auth.dependencies import OrgInstallerPrincipal, OrgProviderPrincipal, OrgSettingsPrincipal
from apps_api.auth.service import Principal
from apps_api.catalog.dependencies import OwnedAppDep
from apps_api.installations import repository, service
from apps_api.installations.schemas import AppInstallation, AppInstallationInput, OwnedAppInstallation
from apps_api.kit.db import SessionDep
from apps_api.kit.deps import SettingsDep
from apps_api.kit.errors import NotFound, error_responses
from apps_api.kit.pagination import Page, PageParams, PageParamsDep, paginate
from apps_api.kit.views import json_response
from apps_api.models import AppInstallation as AppInstallationModel
from apps_api.settings import Settings

router = APIRouter(prefix="/api/v5")

InstallationId = Annotated[uuid.UUID, Path(description="The ID of the app installation.")]
InstallerOrganizationId = Annotated[
    uuid.UUID, Path(description="The organization to uninstall the app from.")
]


async def _installations(
    *, session: AsyncSession, request: Request, params: PageParams, statement: Select[Any]
) -> tuple[list[AppInstallationModel], str | None, str | None]:
    rows, next_url, previous_url = await paginate(
        session,
        statement,
        created_at=AppInstallationModel.created_at,
        id_=AppInstallationModel.id,
        params=params,
        request=request,
        options=service.installation_options(),
    )
    return [row[0] for row in rows], next_url, previous_url


# --- app installations (the installing organization) -----------------------------------------


@router.get(
    "/orgs/{organization_id}/app_installations",
    response_model=Page[AppInstallation],
    summary="List app installations",
    tags=["App installations"],
    responses=error_responses(400, 401, 403),
)
async def list_app_installations(
    request: Request, session: SessionDep, principal: OrgSettingsPrincipal, params: PageParamsDep
) -> Page[AppInstallation]:
    """Apps installed in the organization, with their app users; newest first."""
    statement = repository.organization_installations(organization_id=principal.organization_id)
    items, next_url, previous_url = await _installations(
        session=session, request=request, params=params, statement=statement
    )
    return Page(
        next=next_url, previous=previous_url, results=[AppInstallation.model_validate(item) for item in items]
    )


async def _install(
    *,
    request: Request,
    settings: Settings,
    session: AsyncSession,
    principal: Principal,
    data: AppInstallationInput,
) -> Response:
    names = data.app_user
    view = await service.install(
        base_url=settings.public_base_url or str(request.base_url),
        session=session,
        organization=principal.organization,
        app_id=data.app_id,
        actor_user_id=principal.user_id,
        granter=principal,
        allowed_scopes=data.allowed_scopes,
        app_user=service.AppUserInput(**names.model_dump()) if names is not None else None,
    )
    # Built from the rows just written and serialized once (response_model documents it).
    return json_response(view, status_code=201)


# The installation as its app's owner sees it (links from the installing organization's items
# are added by main._link_creates).
_OWNER = "$response.body#/app/owned_by_organization_id"
_INSTALL_LINKS = {
    "get_owned_app_installation": {
        "operationId": "get_owned_app_installation",
        "parameters": {
            "organization_id": _OWNER,
            "app_id": "$response.body#/app_id",
            "installation_id": "$response.body#/id",
        },
        "description": "The app owner's view of the installation.",
    },
    "uninstall_owned_app": {
        "operationId": "uninstall_owned_app",
        "parameters": {
            "organization_id": _OWNER,
            "app_id": "$response.body#/app_id",
            "installer_organization_id": "$response.body#/organization_id",
        },
        "description": "The app owner uninstalls the app from the installing organization.",
    },
}


@router.post(
    "/orgs/{organization_id}/app_installations",
    response_model=AppInstallation,
    status_code=201,
    summary="Install an app",
    tags=["App installations"],
    responses=error_responses(400, 401, 403, 404, 409),
    openapi_extra={"responses": {"201": {"links": _INSTALL_LINKS}}},
)
async def install_app(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    principal: OrgInstallerPrincipal,
    data: AppInstallationInput,
) -> Response:
    """Install an app the organization may install (its own, a public one, or one a partner offers).

    Needs the organization's Apps feature (403), and a user, not an app, who holds every permission
    `allowed_scopes` grants (403 naming the missing ones: no grant beyond the granter). Creates the
    app user when the app requires one (the app's default names unless `app_user` overrides them).
    A second install is a 409. An app with the `install` trigger gets
    `GET trigger_url?type=install&data=<JWT>` from the worker (retried and logged like a webhook).
    """
    return await _install(request=request, settings=settings, session=session, principal=principal, data=data)


@router.get(
    "/orgs/{organization_id}/app_installations/{installation_id}",
    response_model=AppInstallation,
    summary="Retrieve an app installation",
    tags=["App installations"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_app_installation(
    session: SessionDep, principal: OrgSettingsPrincipal, installation_id: InstallationId
) -> AppInstallation:
    installation = await repository.get_organization_installation(
        session=session, organization_id=principal.organization_id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No app installation found with the given ID.")
    return AppInstallation.model_validate(installation)


@router.delete(
    "/orgs/{organization_id}/app_installations/{installation_id}",
    status_code=204,
    summary="Uninstall an app",
    tags=["App installations"],
    responses=error_responses(400, 401, 403, 404),
)
async def uninstall_app(
    session: SessionDep, principal: OrgInstallerPrincipal, installation_id: InstallationId
) -> Response:
    """Uninstall: the app user is deleted and its tokens revoked; the app's uninstall trigger is sent.

    A user of the organization uninstalls; an app principal gets 403."""
    installation = await repository.get_organization_installation(
        session=session, organization_id=principal.organization_id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No app installation found with the given ID.")
    await service.uninstall(session=session, installation=installation, actor_user_id=principal.user_id)
    return Response(status_code=204)


# --- owned app installations (the app owner) -------------------------------------------------


@router.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/installations",
    response_model=Page[OwnedAppInstallation],
    summary="List the installations of an owned app",
    tags=["Owned app installations"],
    responses=error_responses(400, 401, 403, 404),
)
async def list_owned_app_installations(
    request: Request, session: SessionDep, app: OwnedAppDep, params: PageParamsDep
) -> Page[OwnedAppInstallation]:
    """Every organization the app is installed in, with its app user; newest first."""
    items, next_url, previous_url = await _installations(
        session=session, request=request, params=params, statement=repository.app_installations(app_id=app.id)
    )
    return Page(
        next=next_url,
        previous=previous_url,
        results=[OwnedAppInstallation.model_validate(item) for item in items],
    )


@router.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/installations/{installation_id}",
    response_model=OwnedAppInstallation,
    summary="Retrieve an installation of an owned app",
    tags=["Owned app installations"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_owned_app_installation(
    session: SessionDep, app: OwnedAppDep, installation_id: InstallationId
) -> OwnedAppInstallation:
    installation = await repository.get_app_installation(
        session=session, app_id=app.id, installation_id=installation_id
    )
    if installation is None:
        raise NotFound("No owned app installation found with the given ID.")
    return OwnedAppInstallation.model_validate(installation)


@router.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}/installations/{installer_organization_id}",
    status_code=204,
    summary="Uninstall an owned app from an organization",
    tags=["Owned app installations"],
    responses=error_responses(400, 401, 403, 404),
)
async def uninstall_owned_app(
    session: SessionDep,
    principal: OrgProviderPrincipal,
    app: OwnedAppDep,
    installer_organization_id: InstallerOrganizationId,
) -> Response:
    """The owner uninstalls its app from the organization that installed it (by that organization's ID)."""
    installation = await repository.get_app_installation_in(
        session=session, app_id=app.id, organization_id=installer_organization_id
    )
    if installation is None:
        raise NotFound("The app is not installed in the given organization.")
    await service.uninstall(session=session, installation=installation, actor_user_id=principal.user_id)
    return Response(status_code=204)
