"""`GET /api/v5/orgs/{organization_id}/users`: the organization's live users, bots included.

The REST side of the `users` channel: `auth.policy` admits a caller here exactly when it admits
an app's webhook to the organization's `users` events (a user with `users`, an app whose
installation was granted `users`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from apps_api.auth.dependencies import OrgUsersPrincipal
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import error_responses
from apps_api.kit.pagination import Page, PageParamsDep, paginate
from apps_api.kit.schemas import UserEmbed
from apps_api.models import User
from apps_api.users import repository

router = APIRouter(prefix="/api/v5")


@router.get(
    "/orgs/{organization_id}/users",
    response_model=Page[UserEmbed],
    summary="List users",
    tags=["Users"],
    responses=error_responses(400, 401, 403),
)
async def list_users(
    request: Request, session: SessionDep, principal: OrgUsersPrincipal, params: PageParamsDep
) -> Page[UserEmbed]:
    """The organization's users (app users included), newest first. Needs the `users` permission."""
    statement = repository.organization_users(organization_id=principal.organization_id)
    rows, next_url, previous_url = await paginate(
        session, statement, created_at=User.created_at, id_=User.id, params=params, request=request
    )
    return Page(next=next_url, previous=previous_url, results=[UserEmbed.of(row[0]) for row in rows])
