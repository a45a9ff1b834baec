"""The app catalogue: public, partner, owned and installed apps, and app shares (docs/design.md section 6)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response
from sqlalchemy import ColumnElement

from apps_api.apps import repository, service
from apps_api.apps.schemas import (
    AppShare,
    AppShareInput,
    OwnedApp,
    OwnedAppInput,
    OwnedAppPatch,
    PartnerApp,
    PublicApp,
    RotateSecretInput,
    app_share_json,
    owned_app_json,
    public_app_json,
)
from apps_api.auth.dependencies import (
    OrgSettingsReader,
    ProviderReader,
    ProviderStatementWriter,
    ProviderWriter,
    SettingsReader,
)
from apps_api.catalog.dependencies import AppId, OwnedAppDep, ReadOwnedAppId
from apps_api.catalog.views import InstalledApp, installed_app_json
from apps_api.kit.driver import CompiledStatement, ReadConnection
from apps_api.kit.errors import NotFound, error_responses
from apps_api.kit.pagination import KeysetQuery, Page, PageParams, PageParamsDep, json_keyset_page
from apps_api.kit.views import json_response

# One router per section, each with its tag; `router` includes them all (at the end of the module).
public = APIRouter(prefix="/api/v5", tags=["Public apps"])
partner = APIRouter(prefix="/api/v5", tags=["Partner apps"])
owned = APIRouter(prefix="/api/v5", tags=["Owned apps"])
shares = APIRouter(prefix="/api/v5", tags=["App shares"])
installed = APIRouter(prefix="/api/v5", tags=["Installed apps"])
router = APIRouter()

ShareId = Annotated[uuid.UUID, Path(description="The ID of the app share.")]


@dataclass(frozen=True)
class _List:
    """A list: a compiled statement, rows straight to JSON (the route's response_model documents it)."""

    query: KeysetQuery
    view: Callable[[Any], dict[str, Any]]
    conditions: Sequence[ColumnElement[bool]]

    async def page(self, db: ReadConnection, request: Request, params: PageParams, **values: Any) -> Response:
        """One page; `values` fill the conditions' bound parameters."""
        return await json_keyset_page(
            db,
            self.query,
            self.view,
            conditions=self.conditions,
            params=params,
            request=request,
            **values,
        )


@dataclass(frozen=True)
class _Item:
    """One item of a list: its compiled statement, its row through the list's view (404 without one)."""

    statement: CompiledStatement
    view: Callable[[Any], dict[str, Any]]
    missing: str

    async def get(self, db: ReadConnection, **values: Any) -> Response:
        rows = await self.statement.fetch(db, **values)
        if not rows:
            raise NotFound(self.missing)
        return json_response(self.view(rows[0]), status_code=200)


_PUBLIC_APPS = _List(repository.PUBLIC_APPS_PAGE, public_app_json, repository.PUBLIC_APPS_CONDITIONS)
_PUBLIC_APP = _Item(repository.PUBLIC_APP, public_app_json, "No public app found with the given ID.")
# A partner app has the public view's attributes (PartnerApp and PublicApp are the same shape).
_PARTNER_APPS = _List(repository.PARTNER_APPS_PAGE, public_app_json, repository.PARTNER_APPS_CONDITIONS)
_PARTNER_APP = _Item(repository.PARTNER_APP, public_app_json, "No partner app found with the given ID.")
_OWNED_APPS = _List(repository.OWNED_APPS_PAGE, owned_app_json, repository.OWNED_APPS_CONDITIONS)
_OWNED_APP = _Item(repository.OWNED_APP, owned_app_json, "No owned app found with the given ID.")
_APP_SHARES = _List(repository.APP_SHARES_PAGE, app_share_json, repository.APP_SHARES_CONDITIONS)
_APP_SHARE = _Item(repository.APP_SHARE, app_share_json, "No app share found with the given ID.")
_INSTALLED_APPS = _List(
    repository.INSTALLED_APPS_PAGE, installed_app_json, repository.INSTALLED_APPS_CONDITIONS
)
_INSTALLED_APP = _Item(
    repository.INSTALLED_APP, installed_app_json, "No installed app found with the given ID."
)


# --- public apps -----------------------------------------------------------------------------


@public.get(
    "/public_apps",
    response_model=Page[PublicApp],
    summary="List public apps",
    responses=error_responses(400, 401, 403),
)
async def list_public_apps(request: Request, reader: SettingsReader, params: PageParamsDep) -> Response:
    """Approved apps available to anyone, newest first."""
    return await _PUBLIC_APPS.page(reader.db, request, params)


@public.get(
    "/public_apps/{app_id}",
    response_model=PublicApp,
    summary="Retrieve a public app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_public_app(reader: SettingsReader, app_id: AppId) -> Response:
    return await _PUBLIC_APP.get(reader.db, app_id=app_id)


# --- partner apps ----------------------------------------------------------------------------


@partner.get(
    "/orgs/{organization_id}/partner_apps",
    response_model=Page[PartnerApp],
    summary="List partner apps",
    responses=error_responses(400, 401, 403),
)
async def list_partner_apps(request: Request, reader: OrgSettingsReader, params: PageParamsDep) -> Response:
    """Apps of partner organizations available to partners or shared with this one, newest first."""
    organization_id = reader.principal.organization_id
    return await _PARTNER_APPS.page(reader.db, request, params, organization_id=organization_id)


@partner.get(
    "/orgs/{organization_id}/partner_apps/{app_id}",
    response_model=PartnerApp,
    summary="Retrieve a partner app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_partner_app(reader: OrgSettingsReader, app_id: AppId) -> Response:
    organization_id = reader.principal.organization_id
    return await _PARTNER_APP.get(reader.db, organization_id=organization_id, app_id=app_id)


# --- owned apps ------------------------------------------------------------------------------


@owned.get(
    "/orgs/{organization_id}/owned_apps",
    response_model=Page[OwnedApp],
    summary="List owned apps",
    responses=error_responses(400, 401, 403),
)
async def list_owned_apps(request: Request, reader: ProviderReader, params: PageParamsDep) -> Response:
    """Apps the organization owns, newest first."""
    organization_id = reader.principal.organization_id
    return await _OWNED_APPS.page(reader.db, request, params, organization_id=organization_id)


@owned.post(
    "/orgs/{organization_id}/owned_apps",
    response_model=OwnedApp,
    status_code=201,
    summary="Create an owned app",
    responses=error_responses(
        400,
        401,
        402,
        403,
        409,
        described={
            409: f"The organization already owns {service.MAX_APPS_PER_ORGANIZATION} apps, the most"
            " it may own; delete one first."
        },
    ),
)
async def create_owned_app(writer: ProviderStatementWriter, data: OwnedAppInput) -> Response:
    """Create an app; it is not installed anywhere, not even in the owner organization."""
    view = await service.create_app(db=writer.db, principal=writer.principal, data=data)
    # Built from the values just written and serialized once (response_model documents it).
    return json_response(view, status_code=201)


@owned.get(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    response_model=OwnedApp,
    summary="Retrieve an owned app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_owned_app(reader: ProviderReader, app_id: AppId) -> Response:
    organization_id = reader.principal.organization_id
    return await _OWNED_APP.get(reader.db, organization_id=organization_id, app_id=app_id)


@owned.put(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    summary="Replace an owned app",
    responses=error_responses(400, 401, 402, 403, 404),
)
async def replace_owned_app(writer: ProviderWriter, app: OwnedAppDep, data: OwnedAppInput) -> OwnedApp:
    """Every required attribute must be given. Setting publicity to false uninstalls the app wherever
    it may no longer be installed."""
    updated = await service.update_app(
        session=writer.session, principal=writer.principal, app=app, data=data, partial=False
    )
    return OwnedApp.model_validate(updated)


@owned.patch(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    summary="Update an owned app",
    responses=error_responses(400, 401, 402, 403, 404),
)
async def update_owned_app(writer: ProviderWriter, app: OwnedAppDep, data: OwnedAppPatch) -> OwnedApp:
    """Change only the given attributes. Setting publicity to false uninstalls the app wherever it
    may no longer be installed."""
    updated = await service.update_app(
        session=writer.session, principal=writer.principal, app=app, data=data, partial=True
    )
    return OwnedApp.model_validate(updated)


# No body: the default grace period.
_NO_ROTATION_BODY = RotateSecretInput()


@owned.post(
    "/orgs/{organization_id}/owned_apps/{app_id}/rotate_secret",
    summary="Rotate an owned app's secret",
    responses=error_responses(400, 401, 403, 404),
)
async def rotate_owned_app_secret(
    writer: ProviderWriter,
    app: OwnedAppDep,
    data: Annotated[RotateSecretInput, Body()] = _NO_ROTATION_BODY,
) -> OwnedApp:
    """A new `secret` (64 hex characters), returned here. During `grace_period_seconds` (default
    86400, at most 604800; 0 ends it at once) the previous secret still authenticates GIOSGAPP and
    `/identity/token`, and webhooks carry a second signature made with it
    (`webhook-signature: v1,<new> v1,<previous>`). Trigger JWTs are signed with the new secret.
    Emits `changed` on the app's webhooks channel."""
    grace = data.grace_period_seconds
    rotated = await service.rotate_secret(
        session=writer.session, principal=writer.principal, app=app, grace_period_seconds=grace
    )
    return OwnedApp.model_validate(rotated)


@owned.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    status_code=204,
    summary="Delete an owned app",
    responses=error_responses(400, 401, 403, 404),
)
async def delete_owned_app(writer: ProviderWriter, app: OwnedAppDep) -> Response:
    """Uninstall the app from every organization (with uninstall triggers), then delete it."""
    await service.delete_app(session=writer.session, principal=writer.principal, app=app)
    return Response(status_code=204)


# --- app shares ------------------------------------------------------------------------------
# The GETs name the app before the reader: OpenAPI lists a dependency's own parameters before
# those of the dependencies it depends on, so `app_id` stays ahead of `organization_id`.


@shares.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares",
    response_model=Page[AppShare],
    summary="List the shares of an owned app",
    responses=error_responses(400, 401, 403, 404),
)
async def list_app_shares(
    request: Request, app_id: ReadOwnedAppId, reader: ProviderReader, params: PageParamsDep
) -> Response:
    """Partner organizations the app is shared with, newest first."""
    return await _APP_SHARES.page(reader.db, request, params, app_id=app_id)


@shares.post(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares",
    status_code=201,
    summary="Share an owned app with a partner organization",
    responses=error_responses(400, 401, 403, 404, 409),
)
async def create_app_share(writer: ProviderWriter, app: OwnedAppDep, data: AppShareInput) -> AppShare:
    """The partner may then see the app among its partner apps and install it."""
    share = await service.create_share(session=writer.session, principal=writer.principal, app=app, data=data)
    return AppShare.model_validate(share)


@shares.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares/{share_id}",
    response_model=AppShare,
    summary="Retrieve an app share",
    responses=error_responses(400, 401, 403, 404),
)
async def get_app_share(app_id: ReadOwnedAppId, reader: ProviderReader, share_id: ShareId) -> Response:
    return await _APP_SHARE.get(reader.db, app_id=app_id, share_id=share_id)


@shares.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares/{share_id}",
    status_code=204,
    summary="Remove an app share",
    responses=error_responses(400, 401, 403, 404),
)
async def delete_app_share(writer: ProviderWriter, app: OwnedAppDep, share_id: ShareId) -> Response:
    """The organization loses the app: it is uninstalled there unless it may still install it otherwise."""
    await service.delete_share(session=writer.session, principal=writer.principal, app=app, share_id=share_id)
    return Response(status_code=204)


# --- installed apps --------------------------------------------------------------------------


@installed.get(
    "/orgs/{organization_id}/installed_apps",
    response_model=Page[InstalledApp],
    summary="List installed apps",
    responses=error_responses(400, 401, 403),
)
async def list_installed_apps(request: Request, reader: OrgSettingsReader, params: PageParamsDep) -> Response:
    """Apps installed in the organization, newest first."""
    return await _INSTALLED_APPS.page(
        reader.db, request, params, organization_id=reader.principal.organization_id
    )


@installed.get(
    "/orgs/{organization_id}/installed_apps/{app_id}",
    response_model=InstalledApp,
    summary="Retrieve an installed app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_installed_app(reader: OrgSettingsReader, app_id: AppId) -> Response:
    organization_id = reader.principal.organization_id
    return await _INSTALLED_APP.get(reader.db, organization_id=organization_id, app_id=app_id)


for section in (public, partner, owned, shares, installed):
    router.include_router(section)
