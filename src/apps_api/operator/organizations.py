"""The operator API on organizations: the organization itself, its partners and its assets."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from apps_api.kit.db import SessionDep
from apps_api.kit.errors import NotFound
from apps_api.kit.pagination import Page, PageParamsDep
from apps_api.models import Asset
from apps_api.operator import queries, schemas, service
from apps_api.operator.dependencies import (
    CONFLICT,
    OrganizationDep,
    OrganizationKey,
    PartnerKey,
    ReadDb,
    ReadOrganization,
    answer_put,
    operator_errors,
    operator_router,
    put_responses,
    read_page_of,
)
from apps_api.platform import service as platform

router = operator_router()

ORGANIZATION = "/{organization}"
PARTNER = "/{organization}/partners/{partner}"
ASSETS = "/{organization}/assets"


@router.get("", summary="List organizations", name="operator_list_organizations")
async def list_organizations(
    request: Request, db: ReadDb, params: PageParamsDep
) -> Page[schemas.Organization]:
    """Every organization, newest first."""
    return await read_page_of(
        db,
        queries.ORGANIZATIONS_PAGE,
        conditions=queries.ORGANIZATIONS_CONDITIONS,
        view=schemas.Organization.of_row,
        params=params,
        request=request,
    )


@router.post(
    "",
    status_code=201,
    summary="Create an organization",
    name="operator_create_organization",
    responses=CONFLICT,
)
async def create_organization(session: SessionDep, data: schemas.OrganizationCreate) -> schemas.Organization:
    """409 when `external_id` is another organization's."""
    with operator_errors():
        organization = await service.create_organization(
            session=session, data=data, external_id=data.external_id
        )
    return schemas.Organization.of(organization)


@router.get(ORGANIZATION, summary="Retrieve an organization", name="operator_get_organization")
async def get_organization(organization: ReadOrganization) -> schemas.Organization:
    return schemas.Organization.of_row(organization)


@router.put(
    ORGANIZATION,
    summary="Create or update an organization by its external id",
    name="operator_put_organization",
    responses=put_responses(schemas.Organization, "Created.", 409),
)
async def put_organization(
    response: Response, session: SessionDep, organization: OrganizationKey, data: schemas.OrganizationPut
) -> schemas.Organization:
    """The whole state of the organization. On an `external_id` it is created if new (201), else
    updated (200); on `id:<uuid>` it must exist (404). Features removed take effect at once
    (docs/operator-api.md: losing `apps` uninstalls every app installed there)."""
    with operator_errors():
        put, created = await service.put_organization(session=session, key=organization, data=data)
    answer_put(response, created=created)
    return schemas.Organization.of(put)


@router.patch(
    ORGANIZATION, summary="Update an organization", name="operator_update_organization", responses=CONFLICT
)
async def update_organization(
    session: SessionDep, organization: OrganizationDep, data: schemas.OrganizationPatch
) -> schemas.Organization:
    """Change the attributes given (name, features, subscription end, external id)."""
    with operator_errors():
        await service.patch_organization(session=session, organization=organization, data=data)
    return schemas.Organization.of(organization)


# --- partnerships ----------------------------------------------------------------------------


@router.get(
    "/{organization}/partners", summary="List the partners of an organization", name="operator_list_partners"
)
async def list_partners(
    request: Request, db: ReadDb, organization: ReadOrganization, params: PageParamsDep
) -> Page[schemas.Organization]:
    """The organization's partners, newest organization first."""
    return await read_page_of(
        db,
        queries.PARTNERS_PAGE,
        conditions=queries.PARTNERS_CONDITIONS,
        view=schemas.Organization.of_row,
        params=params,
        request=request,
        organization_id=organization["id"],
    )


@router.put(
    PARTNER,
    summary="Make two organizations partners",
    name="operator_add_partner",
    responses=put_responses(schemas.Organization, "Partners from now on."),
)
async def add_partner(
    response: Response, session: SessionDep, organization: OrganizationDep, partner: PartnerKey
) -> schemas.Organization:
    """Symmetric; answers the partner. 201 when the partnership is new, 200 when it existed."""
    with operator_errors():
        other = await platform.organization_by_key(session=session, key=partner)
        _, created = await platform.ensure_partnership(session=session, a=organization.id, b=other.id)
    answer_put(response, created=created)
    return schemas.Organization.of(other)


@router.delete(PARTNER, status_code=204, summary="End a partnership", name="operator_remove_partner")
async def remove_partner(session: SessionDep, organization: OrganizationDep, partner: PartnerKey) -> Response:
    """Drops the shares between the two and uninstalls what either may no longer install
    (with its `removed` events and uninstall triggers). 404 when they are not partners."""
    with operator_errors():
        other = await platform.organization_by_key(session=session, key=partner)
        removed, _ = await service.end_partnership(session=session, a=organization.id, b=other.id)
    if not removed:
        raise NotFound("The organizations are not partners.")
    return Response(status_code=204)


# --- assets ----------------------------------------------------------------------------------


def _asset(asset: Any) -> schemas.Asset:
    """The view of an Asset object (a write) or of a row (a GET's, operator/queries.py's columns)."""
    if isinstance(asset, Asset):
        return schemas.Asset.model_validate(asset, from_attributes=True)
    return schemas.Asset.model_validate(dict(asset))


@router.post(ASSETS, status_code=201, summary="Record an icon asset", name="operator_create_asset")
async def create_asset(
    session: SessionDep, organization: OrganizationDep, data: schemas.AssetCreate
) -> schemas.Asset:
    """An image at a URL the organization's apps may name as `icon_asset_id`."""
    with operator_errors():
        asset = await platform.create_asset(
            session=session,
            organization_id=organization.id,
            url=data.url,
            content_type=data.content_type,
            size=data.size,
            width=data.width,
            height=data.height,
        )
    return _asset(asset)


@router.get(ASSETS, summary="List the assets of an organization", name="operator_list_assets")
async def list_assets(
    request: Request, db: ReadDb, organization: ReadOrganization, params: PageParamsDep
) -> Page[schemas.Asset]:
    """The organization's assets, newest first."""
    return await read_page_of(
        db,
        queries.ASSETS_PAGE,
        conditions=queries.ASSETS_CONDITIONS,
        view=_asset,
        params=params,
        request=request,
        organization_id=organization["id"],
    )
