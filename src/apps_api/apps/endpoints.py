"""The app catalogue: public, partner, owned and installed apps, and app shares (docs/design.md section 6)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select
from sqlalchemy.ext.asyncio import AsyncSession

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
    owned_app_json,
    public_app_json,
)
from apps_api.auth.dependencies import (
    OrgProviderPrincipal,
    OrgSettingsPrincipal,
    OrgSettingsReader,
    ProviderReader,
    SettingsPrincipal,
    SettingsReader,
)
from apps_api.auth.service import Principal
from apps_api.catalog import repository as catalog
from apps_api.catalog.dependencies import AppId, OwnedAppDep
from apps_api.catalog.views import InstalledApp, installed_app_json
from apps_api.kit.db import SessionDep
from apps_api.kit.driver import ReadConnection
from apps_api.kit.errors import NotFound, error_responses
from apps_api.kit.pagination import (
    KeysetQuery,
    Page,
    PageParams,
    PageParamsDep,
    json_keyset_page,
    paginate,
)
from apps_api.kit.views import json_response
from apps_api.models import App
from apps_api.models import AppShare as AppShareModel

# One router per section, each with its tag; `router` includes them all (at the end of the module).
public = APIRouter(prefix="/api/v5", tags=["Public apps"])
partner = APIRouter(prefix="/api/v5", tags=["Partner apps"])
owned = APIRouter(prefix="/api/v5", tags=["Owned apps"])
shares = APIRouter(prefix="/api/v5", tags=["App shares"])
installed = APIRouter(prefix="/api/v5", tags=["Installed apps"])
router = APIRouter()

View = TypeVar("View", bound=BaseModel)
ShareId = Annotated[uuid.UUID, Path(description="The ID of the app share.")]


async def _app_page(
    *,
    session: AsyncSession,
    request: Request,
    params: PageParams,
    statement: Select[Any],
    view: type[View],
    options: Sequence[Any] | None = None,
) -> Page[View]:
    rows, next_url, previous_url = await paginate(
        session,
        statement,
        created_at=App.created_at,
        id_=App.id,
        params=params,
        request=request,
        options=catalog.app_view_options() if options is None else options,
    )
    return Page[view](  # type: ignore[valid-type]
        next=next_url, previous=previous_url, results=[view.model_validate(row[0]) for row in rows]
    )


def _found(view: Callable[[Any], View], app: App | None, detail: str) -> View:
    if app is None:
        raise NotFound(detail)
    return view(app)


@dataclass(frozen=True)
class _HotList:
    """A hot list: a compiled statement, rows straight to JSON (the route's response_model documents it)."""

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


_PUBLIC_APPS = _HotList(repository.PUBLIC_APPS_PAGE, public_app_json, repository.PUBLIC_APPS_CONDITIONS)
_OWNED_APPS = _HotList(repository.OWNED_APPS_PAGE, owned_app_json, repository.OWNED_APPS_CONDITIONS)
_INSTALLED_APPS = _HotList(
    repository.INSTALLED_APPS_PAGE, installed_app_json, repository.INSTALLED_APPS_CONDITIONS
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
    "/public_apps/{app_id}", summary="Retrieve a public app", responses=error_responses(400, 401, 403, 404)
)
async def get_public_app(session: SessionDep, _: SettingsPrincipal, app_id: AppId) -> PublicApp:
    app = await repository.get_public_app(session=session, app_id=app_id)
    return _found(PublicApp.model_validate, app, "No public app found with the given ID.")


# --- partner apps ----------------------------------------------------------------------------


@partner.get(
    "/orgs/{organization_id}/partner_apps",
    summary="List partner apps",
    responses=error_responses(400, 401, 403),
)
async def list_partner_apps(
    request: Request, session: SessionDep, principal: OrgSettingsPrincipal, params: PageParamsDep
) -> Page[PartnerApp]:
    """Apps of partner organizations available to partners or shared with this one, newest first."""
    statement = repository.partner_apps(organization_id=principal.organization_id)
    return await _app_page(
        session=session, request=request, params=params, statement=statement, view=PartnerApp
    )


@partner.get(
    "/orgs/{organization_id}/partner_apps/{app_id}",
    summary="Retrieve a partner app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_partner_app(session: SessionDep, principal: OrgSettingsPrincipal, app_id: AppId) -> PartnerApp:
    app = await repository.get_partner_app(
        session=session, organization_id=principal.organization_id, app_id=app_id
    )
    return _found(PartnerApp.model_validate, app, "No partner app found with the given ID.")


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


async def _create_owned_app(*, session: AsyncSession, principal: Principal, data: OwnedAppInput) -> Response:
    view = await service.create_app(session=session, principal=principal, data=data)
    # Built from the values just written and serialized once (response_model documents it).
    return json_response(view, status_code=201)


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
async def create_owned_app(
    session: SessionDep, principal: OrgProviderPrincipal, data: OwnedAppInput
) -> Response:
    """Create an app; it is not installed anywhere, not even in the owner organization."""
    return await _create_owned_app(session=session, principal=principal, data=data)


@owned.get(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    response_model=OwnedApp,
    summary="Retrieve an owned app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_owned_app(reader: ProviderReader, app_id: AppId) -> Response:
    rows = await repository.OWNED_APP.fetch(
        reader.db, organization_id=reader.principal.organization_id, app_id=app_id
    )
    if not rows:
        raise NotFound("No owned app found with the given ID.")
    return json_response(owned_app_json(rows[0]), status_code=200)


@owned.put(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    summary="Replace an owned app",
    responses=error_responses(400, 401, 402, 403, 404),
)
async def replace_owned_app(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep, data: OwnedAppInput
) -> OwnedApp:
    """Every required attribute must be given. Setting publicity to false uninstalls the app wherever
    it may no longer be installed."""
    updated = await service.update_app(
        session=session, principal=principal, app=app, data=data, partial=False
    )
    return OwnedApp.model_validate(updated)


@owned.patch(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    summary="Update an owned app",
    responses=error_responses(400, 401, 402, 403, 404),
)
async def update_owned_app(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep, data: OwnedAppPatch
) -> OwnedApp:
    """Change only the given attributes. Setting publicity to false uninstalls the app wherever it
    may no longer be installed."""
    updated = await service.update_app(session=session, principal=principal, app=app, data=data, partial=True)
    return OwnedApp.model_validate(updated)


# No body: the default grace period.
_NO_ROTATION_BODY = RotateSecretInput()


@owned.post(
    "/orgs/{organization_id}/owned_apps/{app_id}/rotate_secret",
    summary="Rotate an owned app's secret",
    responses=error_responses(400, 401, 403, 404),
)
async def rotate_owned_app_secret(
    session: SessionDep,
    principal: OrgProviderPrincipal,
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
        session=session, principal=principal, app=app, grace_period_seconds=grace
    )
    return OwnedApp.model_validate(rotated)


@owned.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    status_code=204,
    summary="Delete an owned app",
    responses=error_responses(400, 401, 403, 404),
)
async def delete_owned_app(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep
) -> Response:
    """Uninstall the app from every organization (with uninstall triggers), then delete it."""
    await service.delete_app(session=session, principal=principal, app=app)
    return Response(status_code=204)


# --- app shares ------------------------------------------------------------------------------


@shares.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares",
    summary="List the shares of an owned app",
    responses=error_responses(400, 401, 403, 404),
)
async def list_app_shares(
    request: Request, session: SessionDep, app: OwnedAppDep, params: PageParamsDep
) -> Page[AppShare]:
    """Partner organizations the app is shared with, newest first."""
    rows, next_url, previous_url = await paginate(
        session,
        repository.app_shares(app_id=app.id),
        created_at=AppShareModel.created_at,
        id_=AppShareModel.id,
        params=params,
        request=request,
        options=repository.app_share_options(),
    )
    return Page(
        next=next_url, previous=previous_url, results=[AppShare.model_validate(row[0]) for row in rows]
    )


@shares.post(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares",
    status_code=201,
    summary="Share an owned app with a partner organization",
    responses=error_responses(400, 401, 403, 404, 409),
)
async def create_app_share(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep, data: AppShareInput
) -> AppShare:
    """The partner may then see the app among its partner apps and install it."""
    share = await service.create_share(session=session, principal=principal, app=app, data=data)
    return AppShare.model_validate(share)


@shares.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares/{share_id}",
    summary="Retrieve an app share",
    responses=error_responses(400, 401, 403, 404),
)
async def get_app_share(session: SessionDep, app: OwnedAppDep, share_id: ShareId) -> AppShare:
    share = await repository.get_app_share(session=session, app_id=app.id, share_id=share_id)
    if share is None:
        raise NotFound("No app share found with the given ID.")
    return AppShare.model_validate(share)


@shares.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares/{share_id}",
    status_code=204,
    summary="Remove an app share",
    responses=error_responses(400, 401, 403, 404),
)
async def delete_app_share(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep, share_id: ShareId
) -> Response:
    """The organization loses the app: it is uninstalled there unless it may still install it otherwise."""
    await service.delete_share(session=session, principal=principal, app=app, share_id=share_id)
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
    summary="Retrieve an installed app",
    responses=error_responses(400, 401, 403, 404),
)
async def get_installed_app(
    session: SessionDep, principal: OrgSettingsPrincipal, app_id: AppId
) -> InstalledApp:
    app = await repository.get_installed_app(
        session=session, organization_id=principal.organization_id, app_id=app_id
    )
    return _found(InstalledApp.model_validate, app, "No installed app found with the given ID.")


for section in (public, partner, owned, shares, installed):
    router.include_router(section)
