"""The app catalogue: public, partner, owned and installed apps, and app shares (docs/design.md section 6)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select
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
from apps_api.auth.dependencies import OrgProviderPrincipal, OrgSettingsPrincipal, SettingsPrincipal
from apps_api.auth.service import Principal
from apps_api.catalog import repository as catalog
from apps_api.catalog.dependencies import AppId, OwnedAppDep
from apps_api.catalog.views import InstalledApp, installed_app_json
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound, error_responses
from apps_api.kit.pagination import (
    Page,
    PageParams,
    PageParamsDep,
    json_keyset_page,
    paginate,
)
from apps_api.kit.views import json_response
from apps_api.models import App
from apps_api.models import AppShare as AppShareModel

router = APIRouter(prefix="/api/v5")

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


# --- public apps -----------------------------------------------------------------------------


async def _public_apps_page(db: AsyncSession, *, request: Request, params: PageParams) -> Response:
    # A hot list: a compiled statement, rows straight to JSON (response_model documents it).
    return await json_keyset_page(
        db,
        repository.PUBLIC_APPS_PAGE,
        public_app_json,
        conditions=repository.PUBLIC_APPS_CONDITIONS,
        params=params,
        request=request,
    )


@router.get(
    "/public_apps",
    response_model=Page[PublicApp],
    summary="List public apps",
    tags=["Public apps"],
    responses=error_responses(400, 401, 403),
)
async def list_public_apps(
    request: Request, session: SessionDep, _: SettingsPrincipal, params: PageParamsDep
) -> Response:
    """Approved apps available to anyone, newest first."""
    return await _public_apps_page(session, request=request, params=params)


@router.get(
    "/public_apps/{app_id}",
    response_model=PublicApp,
    summary="Retrieve a public app",
    tags=["Public apps"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_public_app(session: SessionDep, _: SettingsPrincipal, app_id: AppId) -> PublicApp:
    app = await repository.get_public_app(session=session, app_id=app_id)
    return _found(PublicApp.model_validate, app, "No public app found with the given ID.")


# --- partner apps ----------------------------------------------------------------------------


@router.get(
    "/orgs/{organization_id}/partner_apps",
    response_model=Page[PartnerApp],
    summary="List partner apps",
    tags=["Partner apps"],
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


@router.get(
    "/orgs/{organization_id}/partner_apps/{app_id}",
    response_model=PartnerApp,
    summary="Retrieve a partner app",
    tags=["Partner apps"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_partner_app(session: SessionDep, principal: OrgSettingsPrincipal, app_id: AppId) -> PartnerApp:
    app = await repository.get_partner_app(
        session=session, organization_id=principal.organization_id, app_id=app_id
    )
    return _found(PartnerApp.model_validate, app, "No partner app found with the given ID.")


# --- owned apps ------------------------------------------------------------------------------


async def _owned_apps_page(
    db: AsyncSession, *, request: Request, params: PageParams, organization_id: uuid.UUID
) -> Response:
    return await json_keyset_page(
        db,
        repository.OWNED_APPS_PAGE,
        owned_app_json,
        conditions=repository.OWNED_APPS_CONDITIONS,
        params=params,
        request=request,
        organization_id=organization_id,
    )


@router.get(
    "/orgs/{organization_id}/owned_apps",
    response_model=Page[OwnedApp],
    summary="List owned apps",
    tags=["Owned apps"],
    responses=error_responses(400, 401, 403),
)
async def list_owned_apps(
    request: Request, session: SessionDep, principal: OrgProviderPrincipal, params: PageParamsDep
) -> Response:
    """Apps the organization owns, newest first."""
    return await _owned_apps_page(
        session, request=request, params=params, organization_id=principal.organization_id
    )


async def _create_owned_app(*, session: AsyncSession, principal: Principal, data: OwnedAppInput) -> Response:
    view = await service.create_app(session=session, principal=principal, data=data)
    # Built from the values just written and serialized once (response_model documents it).
    return json_response(view, status_code=201)


@router.post(
    "/orgs/{organization_id}/owned_apps",
    response_model=OwnedApp,
    status_code=201,
    summary="Create an owned app",
    tags=["Owned apps"],
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


@router.get(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    response_model=OwnedApp,
    summary="Retrieve an owned app",
    tags=["Owned apps"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_owned_app(session: SessionDep, principal: OrgProviderPrincipal, app_id: AppId) -> Response:
    rows = await repository.OWNED_APP.fetch(session, organization_id=principal.organization_id, app_id=app_id)
    if not rows:
        raise NotFound("No owned app found with the given ID.")
    return json_response(owned_app_json(rows[0]), status_code=200)


@router.put(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    response_model=OwnedApp,
    summary="Replace an owned app",
    tags=["Owned apps"],
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


@router.patch(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    response_model=OwnedApp,
    summary="Update an owned app",
    tags=["Owned apps"],
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


@router.post(
    "/orgs/{organization_id}/owned_apps/{app_id}/rotate_secret",
    response_model=OwnedApp,
    summary="Rotate an owned app's secret",
    tags=["Owned apps"],
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


@router.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}",
    status_code=204,
    summary="Delete an owned app",
    tags=["Owned apps"],
    responses=error_responses(400, 401, 403, 404),
)
async def delete_owned_app(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep
) -> Response:
    """Uninstall the app from every organization (with uninstall triggers), then delete it."""
    await service.delete_app(session=session, principal=principal, app=app)
    return Response(status_code=204)


# --- app shares ------------------------------------------------------------------------------


@router.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares",
    response_model=Page[AppShare],
    summary="List the shares of an owned app",
    tags=["App shares"],
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


@router.post(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares",
    response_model=AppShare,
    status_code=201,
    summary="Share an owned app with a partner organization",
    tags=["App shares"],
    responses=error_responses(400, 401, 403, 404, 409),
)
async def create_app_share(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep, data: AppShareInput
) -> AppShare:
    """The partner may then see the app among its partner apps and install it."""
    share = await service.create_share(session=session, principal=principal, app=app, data=data)
    return AppShare.model_validate(share)


@router.get(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares/{share_id}",
    response_model=AppShare,
    summary="Retrieve an app share",
    tags=["App shares"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_app_share(session: SessionDep, app: OwnedAppDep, share_id: ShareId) -> AppShare:
    share = await repository.get_app_share(session=session, app_id=app.id, share_id=share_id)
    if share is None:
        raise NotFound("No app share found with the given ID.")
    return AppShare.model_validate(share)


@router.delete(
    "/orgs/{organization_id}/owned_apps/{app_id}/shares/{share_id}",
    status_code=204,
    summary="Remove an app share",
    tags=["App shares"],
    responses=error_responses(400, 401, 403, 404),
)
async def delete_app_share(
    session: SessionDep, principal: OrgProviderPrincipal, app: OwnedAppDep, share_id: ShareId
) -> Response:
    """The organization loses the app: it is uninstalled there unless it may still install it otherwise."""
    await service.delete_share(session=session, principal=principal, app=app, share_id=share_id)
    return Response(status_code=204)


# --- installed apps --------------------------------------------------------------------------


@router.get(
    "/orgs/{organization_id}/installed_apps",
    response_model=Page[InstalledApp],
    summary="List installed apps",
    tags=["Installed apps"],
    responses=error_responses(400, 401, 403),
)
async def list_installed_apps(
    request: Request, session: SessionDep, principal: OrgSettingsPrincipal, params: PageParamsDep
) -> Response:
    """Apps installed in the organization, newest first."""
    return await json_keyset_page(
        session,
        repository.INSTALLED_APPS_PAGE,
        installed_app_json,
        conditions=repository.INSTALLED_APPS_CONDITIONS,
        params=params,
        request=request,
        organization_id=principal.organization_id,
    )


@router.get(
    "/orgs/{organization_id}/installed_apps/{app_id}",
    response_model=InstalledApp,
    summary="Retrieve an installed app",
    tags=["Installed apps"],
    responses=error_responses(400, 401, 403, 404),
)
async def get_installed_app(
    session: SessionDep, principal: OrgSettingsPrincipal, app_id: AppId
) -> InstalledApp:
    app = await repository.get_installed_app(
        session=session, organization_id=principal.organization_id, app_id=app_id
    )
    return _found(InstalledApp.model_validate, app, "No installed app found with the given ID.")
