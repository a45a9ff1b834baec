"""`/internal/v1/organizations...`: the operator API (service key; docs/operator-api.md).

Organizations and users are named in paths by the operator's `external_id`, or by our id as
`id:<uuid>`. PUT on an external id creates (201) or updates (200) the whole object, so a sync
job can send the same state every few minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from sqlalchemy import select

from apps_api.auth.service_keys import ServiceKeyRequired
from apps_api.catalog.visibility import partner_ids_of
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import BadRequest, Conflict, NotFound, error_responses
from apps_api.kit.pagination import Page, PageParamsDep, paginate
from apps_api.models import ApiToken, Asset, Organization, User
from apps_api.operator import schemas, service
from apps_api.platform import service as platform
from apps_api.platform.service import KEEP, AlreadyTaken, PlatformError, UnknownObject

router = APIRouter(
    prefix="/internal/v1/organizations", tags=["Internal: operator"], dependencies=[ServiceKeyRequired]
)

_KEY = "the operator's `external_id`, or `id:<uuid>` for its `id`"
OrganizationKey = Annotated[str, Path(description=f"The organization: {_KEY}.")]
UserKey = Annotated[str, Path(description=f"The user: {_KEY}.")]
PartnerKey = Annotated[str, Path(description=f"The partner organization: {_KEY}.")]
TokenId = Annotated[uuid.UUID, Path(description="The ID of the API token.")]

_NO_TOKEN_BODY = schemas.TokenCreate()
_CREATED_OR_UPDATED = "201 when the PUT created the object, 200 when it existed (changed or not)."


@contextmanager
def operator_errors() -> Iterator[None]:
    """The service's refusals as the API's errors: 404 unknown, 409 taken, 400 invalid (by field)."""
    try:
        yield
    except UnknownObject as exc:
        raise NotFound(_sentence(exc)) from None
    except AlreadyTaken as exc:
        raise Conflict(_sentence(exc)) from None
    except PlatformError as exc:
        if exc.field is None:
            raise BadRequest(_sentence(exc)) from None
        raise BadRequest(errors={exc.field: [_sentence(exc)]}) from None


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def organization_of(session: SessionDep, organization: OrganizationKey) -> Organization:
    """The organization named in the path; 404 otherwise."""
    with operator_errors():
        return await platform.organization_by_key(session=session, key=organization)


OrganizationDep = Annotated[Organization, Depends(organization_of)]


async def user_of(session: SessionDep, organization: OrganizationDep, user: UserKey) -> User:
    """The organization's live user named in the path; 404 otherwise."""
    with operator_errors():
        return await platform.user_by_key(session=session, organization_id=organization.id, key=user)


UserDep = Annotated[User, Depends(user_of)]


# --- organizations ---------------------------------------------------------------------------


@router.get(
    "",
    response_model=Page[schemas.Organization],
    summary="List organizations",
    name="operator_list_organizations",
    responses=error_responses(400, 401, 404),
)
async def list_organizations(
    request: Request, session: SessionDep, params: PageParamsDep
) -> Page[schemas.Organization]:
    """Every organization, newest first."""
    rows, next_url, previous_url = await paginate(
        session,
        select(Organization),
        created_at=Organization.created_at,
        id_=Organization.id,
        params=params,
        request=request,
    )
    return Page(
        next=next_url, previous=previous_url, results=[schemas.Organization.of(row[0]) for row in rows]
    )


@router.post(
    "",
    response_model=schemas.Organization,
    status_code=201,
    summary="Create an organization",
    name="operator_create_organization",
    responses=error_responses(400, 401, 404, 409),
)
async def create_organization(session: SessionDep, data: schemas.OrganizationCreate) -> schemas.Organization:
    """409 when `external_id` is another organization's."""
    with operator_errors():
        organization = await platform.create_organization(
            session=session,
            name=data.name,
            features=data.features or [],
            subscription_ends_at=data.subscription_ends_at,
            external_id=data.external_id,
        )
    return schemas.Organization.of(organization)


@router.get(
    "/{organization}",
    response_model=schemas.Organization,
    summary="Retrieve an organization",
    name="operator_get_organization",
    responses=error_responses(400, 401, 404),
)
async def get_organization(organization: OrganizationDep) -> schemas.Organization:
    return schemas.Organization.of(organization)


@router.put(
    "/{organization}",
    response_model=schemas.Organization,
    summary="Create or update an organization by its external id",
    name="operator_put_organization",
    responses={
        201: {"model": schemas.Organization, "description": "Created."},
        **error_responses(400, 401, 404, 409),
    },
)
async def put_organization(
    response: Response, session: SessionDep, organization: OrganizationKey, data: schemas.OrganizationPut
) -> schemas.Organization:
    """The whole state of the organization. On an `external_id` it is created if new (201), else
    updated (200); on `id:<uuid>` it must exist (404). Features removed take effect at once
    (docs/operator-api.md: losing `apps` uninstalls every app installed there)."""
    with operator_errors():
        _, external_id = platform.parse_key(organization)
        if external_id is None:
            existing = await platform.organization_by_key(session=session, key=organization)
            await service.update_organization(
                session=session,
                organization=existing,
                name=data.name,
                features=data.features,
                subscription_ends_at=data.subscription_ends_at,
            )
            return schemas.Organization.of(existing)
        put, created = await service.put_organization(
            session=session,
            external_id=external_id,
            name=data.name,
            features=data.features,
            subscription_ends_at=data.subscription_ends_at,
        )
    response.status_code = 201 if created else 200
    return schemas.Organization.of(put)


@router.patch(
    "/{organization}",
    response_model=schemas.Organization,
    summary="Update an organization",
    name="operator_update_organization",
    responses=error_responses(400, 401, 404, 409),
)
async def update_organization(
    session: SessionDep, organization: OrganizationDep, data: schemas.OrganizationPatch
) -> schemas.Organization:
    """Change the attributes given (name, features, subscription end, external id)."""
    given = data.model_fields_set
    with operator_errors():
        await service.update_organization(
            session=session,
            organization=organization,
            name=data.name,
            features=data.features,
            subscription_ends_at=data.subscription_ends_at if "subscription_ends_at" in given else KEEP,
            external_id=data.external_id if "external_id" in given else KEEP,
        )
    return schemas.Organization.of(organization)


# --- users -----------------------------------------------------------------------------------


@router.get(
    "/{organization}/users",
    response_model=Page[schemas.User],
    summary="List the users of an organization",
    name="operator_list_users",
    responses=error_responses(400, 401, 404),
)
async def list_users(
    request: Request, session: SessionDep, organization: OrganizationDep, params: PageParamsDep
) -> Page[schemas.User]:
    """The organization's live users (app users included), newest first."""
    statement = select(User).where(User.organization_id == organization.id, User.deleted_at.is_(None))
    rows, next_url, previous_url = await paginate(
        session, statement, created_at=User.created_at, id_=User.id, params=params, request=request
    )
    return Page(next=next_url, previous=previous_url, results=[schemas.User.of(row[0]) for row in rows])


@router.post(
    "/{organization}/users",
    response_model=schemas.User,
    status_code=201,
    summary="Create a user",
    name="operator_create_user",
    responses=error_responses(400, 401, 404, 409),
)
async def create_user(
    session: SessionDep, organization: OrganizationDep, data: schemas.UserCreate
) -> schemas.User:
    """409 when the email is another live user's, or `external_id` another user's of the organization."""
    with operator_errors():
        user = await platform.create_user(
            session=session,
            organization_id=organization.id,
            external_id=data.external_id,
            email=data.email,
            first_name=data.first_name,
            last_name=data.last_name,
            permissions=data.permissions or [],
            password=data.password,
        )
    return schemas.User.of(user)


@router.get(
    "/{organization}/users/{user}",
    response_model=schemas.User,
    summary="Retrieve a user",
    name="operator_get_user",
    responses=error_responses(400, 401, 404),
)
async def get_user(user: UserDep) -> schemas.User:
    return schemas.User.of(user)


@router.put(
    "/{organization}/users/{user}",
    response_model=schemas.User,
    summary="Create or update a user by its external id",
    name="operator_put_user",
    responses={
        201: {"model": schemas.User, "description": "Created."},
        **error_responses(400, 401, 404, 409),
    },
)
async def put_user(
    response: Response,
    session: SessionDep,
    organization: OrganizationDep,
    user: UserKey,
    data: schemas.UserPut,
) -> schemas.User:
    """The whole state of the user (a `password` left out stays). On an `external_id` the user is
    created if new (201), else updated (200); on `id:<uuid>` it must exist (404). A new email or
    password ends the user's browser sessions; the same password again changes nothing."""
    with operator_errors():
        _, external_id = platform.parse_key(user)
        if external_id is None:
            existing = await platform.user_by_key(session=session, organization_id=organization.id, key=user)
            updated = await platform.update_user(
                session=session,
                user=existing,
                email=data.email,
                first_name=data.first_name,
                last_name=data.last_name,
                permissions=data.permissions,
                password=data.password,
            )
            return schemas.User.of(updated)
        put, created = await service.put_user(
            session=session,
            organization=organization,
            external_id=external_id,
            email=data.email,
            first_name=data.first_name,
            last_name=data.last_name,
            permissions=data.permissions,
            password=data.password,
        )
    response.status_code = 201 if created else 200
    return schemas.User.of(put)


@router.patch(
    "/{organization}/users/{user}",
    response_model=schemas.User,
    summary="Update a user",
    name="operator_update_user",
    responses=error_responses(400, 401, 404, 409),
)
async def update_user(session: SessionDep, user: UserDep, data: schemas.UserPatch) -> schemas.User:
    """Change the attributes given (email, names, permissions, password, external id)."""
    given = data.model_fields_set
    with operator_errors():
        updated = await platform.update_user(
            session=session,
            user=user,
            email=data.email if "email" in given else KEEP,
            first_name=data.first_name if "first_name" in given else KEEP,
            last_name=data.last_name if "last_name" in given else KEEP,
            permissions=data.permissions,
            password=data.password,
            external_id=data.external_id if "external_id" in given else KEEP,
        )
    return schemas.User.of(updated)


@router.delete(
    "/{organization}/users/{user}",
    status_code=204,
    summary="Delete a user",
    name="operator_delete_user",
    responses=error_responses(400, 401, 404),
)
async def delete_user(session: SessionDep, user: UserDep) -> Response:
    """Soft-delete: the user's tokens answer 401 and every browser session ends; the email and
    external id become free."""
    with operator_errors():
        await platform.delete_user(session=session, user_id=user.id)
    return Response(status_code=204)


# --- API tokens ------------------------------------------------------------------------------


def _token(token: ApiToken) -> schemas.Token:
    return schemas.Token.model_validate(token, from_attributes=True)


@router.post(
    "/{organization}/users/{user}/tokens",
    response_model=schemas.NewToken,
    status_code=201,
    summary="Mint an API token of a user",
    name="operator_create_token",
    responses=error_responses(400, 401, 404),
)
async def create_token(
    session: SessionDep, user: UserDep, data: Annotated[schemas.TokenCreate, Body()] = _NO_TOKEN_BODY
) -> schemas.NewToken:
    """`Authorization: Token <token>` acts as the user. The key is in this answer only."""
    with operator_errors():
        token, key = await platform.create_token(session=session, user_id=user.id, expires_at=data.expires_at)
    return schemas.NewToken(**_token(token).model_dump(), token=key)


@router.get(
    "/{organization}/users/{user}/tokens",
    response_model=Page[schemas.Token],
    summary="List the API tokens of a user",
    name="operator_list_tokens",
    responses=error_responses(400, 401, 404),
)
async def list_tokens(
    request: Request, session: SessionDep, user: UserDep, params: PageParamsDep
) -> Page[schemas.Token]:
    """The user's tokens that are not revoked, newest first; never their keys."""
    statement = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    rows, next_url, previous_url = await paginate(
        session, statement, created_at=ApiToken.created_at, id_=ApiToken.id, params=params, request=request
    )
    return Page(next=next_url, previous=previous_url, results=[_token(row[0]) for row in rows])


@router.delete(
    "/{organization}/users/{user}/tokens/{token_id}",
    status_code=204,
    summary="Revoke an API token of a user",
    name="operator_revoke_token",
    responses=error_responses(400, 401, 404),
)
async def revoke_token(session: SessionDep, user: UserDep, token_id: TokenId) -> Response:
    """The token answers 401 from now on."""
    with operator_errors():
        await platform.revoke_token(session=session, user_id=user.id, token_id=token_id)
    return Response(status_code=204)


# --- partnerships ----------------------------------------------------------------------------


@router.get(
    "/{organization}/partners",
    response_model=Page[schemas.Organization],
    summary="List the partners of an organization",
    name="operator_list_partners",
    responses=error_responses(400, 401, 404),
)
async def list_partners(
    request: Request, session: SessionDep, organization: OrganizationDep, params: PageParamsDep
) -> Page[schemas.Organization]:
    """The organization's partners, newest organization first."""
    statement = select(Organization).where(Organization.id.in_(partner_ids_of(organization.id)))
    rows, next_url, previous_url = await paginate(
        session,
        statement,
        created_at=Organization.created_at,
        id_=Organization.id,
        params=params,
        request=request,
    )
    return Page(
        next=next_url, previous=previous_url, results=[schemas.Organization.of(row[0]) for row in rows]
    )


@router.put(
    "/{organization}/partners/{partner}",
    response_model=schemas.Organization,
    summary="Make two organizations partners",
    name="operator_add_partner",
    responses={
        201: {"model": schemas.Organization, "description": "Partners from now on."},
        **error_responses(400, 401, 404),
    },
)
async def add_partner(
    response: Response, session: SessionDep, organization: OrganizationDep, partner: PartnerKey
) -> schemas.Organization:
    """Symmetric; answers the partner. 201 when the partnership is new, 200 when it existed."""
    with operator_errors():
        other = await platform.organization_by_key(session=session, key=partner)
        _, created = await platform.ensure_partnership(session=session, a=organization.id, b=other.id)
    response.status_code = 201 if created else 200
    return schemas.Organization.of(other)


@router.delete(
    "/{organization}/partners/{partner}",
    status_code=204,
    summary="End a partnership",
    name="operator_remove_partner",
    responses=error_responses(400, 401, 404),
)
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


@router.post(
    "/{organization}/assets",
    response_model=schemas.Asset,
    status_code=201,
    summary="Record an icon asset",
    name="operator_create_asset",
    responses=error_responses(400, 401, 404),
)
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
    return schemas.Asset.model_validate(asset, from_attributes=True)


@router.get(
    "/{organization}/assets",
    response_model=Page[schemas.Asset],
    summary="List the assets of an organization",
    name="operator_list_assets",
    responses=error_responses(400, 401, 404),
)
async def list_assets(
    request: Request, session: SessionDep, organization: OrganizationDep, params: PageParamsDep
) -> Page[schemas.Asset]:
    """The organization's assets, newest first."""
    statement = select(Asset).where(Asset.organization_id == organization.id)
    rows, next_url, previous_url = await paginate(
        session, statement, created_at=Asset.created_at, id_=Asset.id, params=params, request=request
    )
    return Page(
        next=next_url,
        previous=previous_url,
        results=[schemas.Asset.model_validate(row[0], from_attributes=True) for row in rows],
    )
