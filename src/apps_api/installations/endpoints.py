"""App installations (the installing organization) and owned app installations (the app owner)."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from apps_api.auth.dependencies import (
    InstallerWriter,
    OrgSettingsReader,
    ProviderReader,
    ProviderWriter,
    Writer,
)
from apps_api.catalog.dependencies import AppId, OwnedAppIdDep, ReadOwnedAppId, read_owned_app_id
from apps_api.installations import repository, service
from apps_api.installations.schemas import (
    AppInstallation,
    AppInstallationInput,
    OwnedAppInstallation,
    installation_row_json,
)
from apps_api.kit.deps import SettingsDep
from apps_api.kit.driver import ReadConnection
from apps_api.kit.errors import NotFound, error_responses
from apps_api.kit.pagination import KeysetQuery, Page, PageParams, PageParamsDep, json_keyset_page
from apps_api.kit.views import json_response
from apps_api.settings import Settings

router = APIRouter(prefix="/api/v5")

INSTALLATIONS = "/orgs/{organization_id}/app_installations"
INSTALLATION = INSTALLATIONS + "/{installation_id}"
OWNED_INSTALLATIONS = "/orgs/{organization_id}/owned_apps/{app_id}/installations"
INSTALLER_TAGS: list[str | Enum] = ["App installations"]
OWNER_TAGS: list[str | Enum] = ["Owned app installations"]
ITEM_ERRORS = error_responses(400, 401, 403, 404)

InstallationId = Annotated[uuid.UUID, Path(description="The ID of the app installation.")]
InstallerOrganizationId = Annotated[
    uuid.UUID, Path(description="The organization to uninstall the app from.")
]
_NOT_INSTALLED = "No app installation found with the given ID."
_NOT_OWNED_INSTALLATION = "No owned app installation found with the given ID."


async def _installations_page(
    db: ReadConnection,
    query: KeysetQuery,
    conditions: tuple[Any, ...],
    *,
    request: Request,
    params: PageParams,
    **values: Any,
) -> Response:
    """A page of installations (newest first unless `ordering` says otherwise), rows straight to JSON."""
    return await json_keyset_page(
        db, query, installation_row_json, conditions=conditions, params=params, request=request, **values
    )


# --- app installations (the installing organization) -----------------------------------------


@router.get(
    INSTALLATIONS,
    response_model=Page[AppInstallation],
    summary="List app installations",
    tags=INSTALLER_TAGS,
    responses=error_responses(400, 401, 403),
)
async def list_app_installations(
    request: Request, reader: OrgSettingsReader, params: PageParamsDep
) -> Response:
    """Apps installed in the organization, with their app users; newest first."""
    return await _installations_page(
        reader.db,
        repository.ORGANIZATION_INSTALLATIONS_PAGE,
        repository.ORGANIZATION_INSTALLATIONS_CONDITIONS,
        request=request,
        params=params,
        organization_id=reader.principal.organization_id,
    )


async def _install(
    *, request: Request, settings: Settings, writer: Writer, data: AppInstallationInput
) -> Response:
    names = data.app_user
    principal = writer.principal
    view = await service.install(
        base_url=settings.public_base_url or str(request.base_url),
        session=writer.session,
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
    INSTALLATIONS,
    response_model=AppInstallation,
    status_code=201,
    summary="Install an app",
    tags=INSTALLER_TAGS,
    responses=error_responses(400, 401, 403, 404, 409),
    openapi_extra={"responses": {"201": {"links": _INSTALL_LINKS}}},
)
async def install_app(
    request: Request, settings: SettingsDep, writer: InstallerWriter, data: AppInstallationInput
) -> Response:
    """Install an app the organization may install (its own, a public one, or one a partner offers).

    Needs the organization's Apps feature (403), and a user, not an app, who holds every permission
    `allowed_scopes` grants (403 naming the missing ones: no grant beyond the granter). Creates the
    app user when the app requires one (the app's default names unless `app_user` overrides them).
    A second install is a 409. An app with the `install` trigger gets
    `GET trigger_url?type=install&data=<JWT>` from the worker (retried and logged like a webhook).
    """
    return await _install(request=request, settings=settings, writer=writer, data=data)


@router.get(
    INSTALLATION,
    response_model=AppInstallation,
    summary="Retrieve an app installation",
    tags=INSTALLER_TAGS,
    responses=ITEM_ERRORS,
)
async def get_app_installation(reader: OrgSettingsReader, installation_id: InstallationId) -> Response:
    rows = await repository.ORGANIZATION_INSTALLATION.fetch(
        reader.db, organization_id=reader.principal.organization_id, installation_id=installation_id
    )
    if not rows:
        raise NotFound(_NOT_INSTALLED)
    return json_response(installation_row_json(rows[0]), status_code=200)


@router.delete(
    INSTALLATION, status_code=204, summary="Uninstall an app", tags=INSTALLER_TAGS, responses=ITEM_ERRORS
)
async def uninstall_app(writer: InstallerWriter, installation_id: InstallationId) -> Response:
    """Uninstall: the app user is deleted and its tokens revoked; the app's uninstall trigger is sent.

    A user of the organization uninstalls; an app principal gets 403."""
    installation = await repository.get_organization_installation(
        session=writer.session,
        organization_id=writer.principal.organization_id,
        installation_id=installation_id,
    )
    if installation is None:
        raise NotFound(_NOT_INSTALLED)
    await service.uninstall(
        session=writer.session, installation=installation, actor_user_id=writer.principal.user_id
    )
    return Response(status_code=204)


# --- owned app installations (the app owner) -------------------------------------------------


@router.get(
    OWNED_INSTALLATIONS,
    response_model=Page[OwnedAppInstallation],
    summary="List the installations of an owned app",
    tags=OWNER_TAGS,
    responses=ITEM_ERRORS,
)
async def list_owned_app_installations(
    request: Request, app_id: ReadOwnedAppId, reader: ProviderReader, params: PageParamsDep
) -> Response:
    """Every organization the app is installed in, with its app user; newest first."""
    # The app before the reader: OpenAPI lists the path parameters in this order (as before).
    return await _installations_page(
        reader.db,
        repository.APP_INSTALLATIONS_PAGE,
        repository.APP_INSTALLATIONS_CONDITIONS,
        request=request,
        params=params,
        app_id=app_id,
    )


@router.get(
    OWNED_INSTALLATIONS + "/{installation_id}",
    response_model=OwnedAppInstallation,
    summary="Retrieve an installation of an owned app",
    tags=OWNER_TAGS,
    responses=ITEM_ERRORS,
)
async def get_owned_app_installation(
    installation_id: InstallationId, app_id: AppId, reader: ProviderReader
) -> Response:
    # Path parameters before the reader: OpenAPI lists them in this order (as before).
    rows = await repository.OWNED_INSTALLATION.fetch(
        reader.db,
        organization_id=reader.principal.organization_id,
        app_id=app_id,
        installation_id=installation_id,
    )
    if not rows:
        await read_owned_app_id(reader, app_id)  # another organization's app: its own 404
        raise NotFound(_NOT_OWNED_INSTALLATION)
    return json_response(installation_row_json(rows[0]), status_code=200)


@router.delete(
    OWNED_INSTALLATIONS + "/{installer_organization_id}",
    status_code=204,
    summary="Uninstall an owned app from an organization",
    tags=OWNER_TAGS,
    responses=ITEM_ERRORS,
)
async def uninstall_owned_app(
    installer_organization_id: InstallerOrganizationId, writer: ProviderWriter, app_id: OwnedAppIdDep
) -> Response:
    """The owner uninstalls its app from the organization that installed it (by that organization's ID)."""
    installation = await repository.get_app_installation_in(
        session=writer.session, app_id=app_id, organization_id=installer_organization_id
    )
    if installation is None:
        raise NotFound("The app is not installed in the given organization.")
    await service.uninstall(
        session=writer.session, installation=installation, actor_user_id=writer.principal.user_id
    )
    return Response(status_code=204)
