"""The operator API on an organization's users and their API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request, Response

from apps_api.kit.db import SessionDep
from apps_api.kit.pagination import Page, PageParamsDep
from apps_api.models import ApiToken
from apps_api.operator import queries, schemas, service
from apps_api.operator.dependencies import (
    CONFLICT,
    OrganizationDep,
    ReadDb,
    ReadOrganization,
    ReadUser,
    TokenId,
    UserDep,
    UserKey,
    answer_put,
    operator_errors,
    operator_router,
    put_responses,
    read_page_of,
)
from apps_api.platform import service as platform

router = operator_router()

USERS = "/{organization}/users"
USER = "/{organization}/users/{user}"
TOKENS = "/{organization}/users/{user}/tokens"

_NO_TOKEN_BODY = schemas.TokenCreate()


@router.get(USERS, summary="List the users of an organization", name="operator_list_users")
async def list_users(
    request: Request, db: ReadDb, organization: ReadOrganization, params: PageParamsDep
) -> Page[schemas.User]:
    """The organization's live users (app users included), newest first."""
    return await read_page_of(
        db,
        queries.USERS_PAGE,
        conditions=queries.USERS_CONDITIONS,
        view=schemas.User.of_row,
        params=params,
        request=request,
        organization_id=organization["id"],
    )


@router.post(USERS, status_code=201, summary="Create a user", name="operator_create_user", responses=CONFLICT)
async def create_user(
    session: SessionDep, organization: OrganizationDep, data: schemas.UserCreate
) -> schemas.User:
    """409 when the email is another live user's, or `external_id` another user's of the organization."""
    with operator_errors():
        user = await service.create_user(
            session=session, organization=organization, data=data, external_id=data.external_id
        )
    return schemas.User.of(user)


@router.get(USER, summary="Retrieve a user", name="operator_get_user")
async def get_user(user: ReadUser) -> schemas.User:
    return schemas.User.of_row(user)


@router.put(
    USER,
    summary="Create or update a user by its external id",
    name="operator_put_user",
    responses=put_responses(schemas.User, "Created.", 409),
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
        put, created = await service.put_user(session=session, organization=organization, key=user, data=data)
    answer_put(response, created=created)
    return schemas.User.of(put)


@router.patch(USER, summary="Update a user", name="operator_update_user", responses=CONFLICT)
async def update_user(session: SessionDep, user: UserDep, data: schemas.UserPatch) -> schemas.User:
    """Change the attributes given (email, names, permissions, password, external id)."""
    with operator_errors():
        updated = await service.patch_user(session=session, user=user, data=data)
    return schemas.User.of(updated)


@router.delete(USER, status_code=204, summary="Delete a user", name="operator_delete_user")
async def delete_user(session: SessionDep, user: UserDep) -> Response:
    """Soft-delete: the user's tokens answer 401 and every browser session ends; the email and
    external id become free."""
    with operator_errors():
        await platform.delete_user(session=session, user_id=user.id)
    return Response(status_code=204)


# --- API tokens ------------------------------------------------------------------------------


def _token(token: Any) -> schemas.Token:
    """The view of an ApiToken object (a write) or of a row (a GET's, operator/queries.py's columns)."""
    if isinstance(token, ApiToken):
        return schemas.Token.model_validate(token, from_attributes=True)
    return schemas.Token.model_validate(dict(token))


@router.post(TOKENS, status_code=201, summary="Mint an API token of a user", name="operator_create_token")
async def create_token(
    session: SessionDep, user: UserDep, data: Annotated[schemas.TokenCreate, Body()] = _NO_TOKEN_BODY
) -> schemas.NewToken:
    """`Authorization: Token <token>` acts as the user. The key is in this answer only."""
    with operator_errors():
        token, key = await platform.create_token(session=session, user_id=user.id, expires_at=data.expires_at)
    return schemas.NewToken(**_token(token).model_dump(), token=key)


@router.get(TOKENS, summary="List the API tokens of a user", name="operator_list_tokens")
async def list_tokens(
    request: Request, db: ReadDb, user: ReadUser, params: PageParamsDep
) -> Page[schemas.Token]:
    """The user's tokens that are not revoked, newest first; never their keys."""
    return await read_page_of(
        db,
        queries.TOKENS_PAGE,
        conditions=queries.TOKENS_CONDITIONS,
        view=_token,
        params=params,
        request=request,
        user_id=user["id"],
    )


@router.delete(
    "/{organization}/users/{user}/tokens/{token_id}",
    status_code=204,
    summary="Revoke an API token of a user",
    name="operator_revoke_token",
)
async def revoke_token(session: SessionDep, user: UserDep, token_id: TokenId) -> Response:
    """The token answers 401 from now on."""
    with operator_errors():
        await platform.revoke_token(session=session, user_id=user.id, token_id=token_id)
    return Response(status_code=204)
