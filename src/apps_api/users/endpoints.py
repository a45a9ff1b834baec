"""`GET /api/v5/orgs/{organization_id}/users`: the organization's live users, bots included.

The REST side of the `users` channel: `auth.policy` admits a caller here exactly when it admits
an app's webhook to the organization's `users` events (a user with `users`, an app whose
installation was granted `users`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from apps_api.auth.dependencies import OrgUsersReader
from apps_api.kit.errors import error_responses
from apps_api.kit.pagination import Page, PageParamsDep, json_keyset_page
from apps_api.kit.schemas import UserEmbed
from apps_api.users import repository

router = APIRouter(prefix="/api/v5")


@router.get(
    "/orgs/{organization_id}/users",
    response_model=Page[UserEmbed],
    summary="List users",
    tags=["Users"],
    responses=error_responses(400, 401, 403),
)
async def list_users(request: Request, reader: OrgUsersReader, params: PageParamsDep) -> Response:
    """The organization's users (app users included), newest first. Needs the `users` permission."""
    return await json_keyset_page(
        reader.db,
        repository.ORGANIZATION_USERS_PAGE,
        repository.user_json,
        conditions=repository.ORGANIZATION_USERS_CONDITIONS,
        params=params,
        request=request,
        organization_id=reader.principal.organization_id,
    )
