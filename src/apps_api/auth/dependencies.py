"""Access checks as chained dependencies, in DESIGN.md section 4's order.

401 (credentials) -> 403 (subscription) -> 403 (organization) -> 403 (`settings`) -> 404 (resource).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader

from apps_api.auth.service import Principal, authenticate_token
from apps_api.kit.db import SessionDep
from apps_api.kit.errors import Forbidden, Unauthorized

# Documents the scheme in OpenAPI; parsing is ours (Token, Bearer and GIOSGAPP forms).
_authorization_header = APIKeyHeader(
    name="Authorization",
    auto_error=False,
    description="`Token <key>` or `Bearer <key>` (an API token), or `GIOSGAPP <token> <app secret>`.",
)


def _split(authorization: str) -> tuple[str, str]:
    scheme, _, credentials = authorization.strip().partition(" ")
    return scheme.lower(), credentials.strip()


def api_token_key(authorization: str | None) -> str | None:
    """The key of a `Token <key>` or `Bearer <key>` header, else None."""
    if not authorization:
        return None
    scheme, credentials = _split(authorization)
    if scheme in ("token", "bearer") and credentials and " " not in credentials:
        return credentials
    return None


async def authenticated(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Depends(_authorization_header)],
) -> Principal:
    """401 unless the request carries a live token of a live user."""
    if not authorization:
        raise Unauthorized("Authentication credentials were not provided.")
    scheme, credentials = _split(authorization)
    principal: Principal | None = None
    key = api_token_key(authorization)
    if key is not None:
        principal = await authenticate_token(session=session, key=key)
    elif scheme == "giosgapp":
        authenticate_app = getattr(request.app.state, "authenticate_app_token", None)
        if authenticate_app is not None:
            principal = await authenticate_app(session=session, credentials=credentials)
    if principal is None:
        raise Unauthorized("Invalid, expired or revoked token.")
    request.state.principal = principal
    return principal


async def subscribed(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    """403 when the caller's organization has no active subscription."""
    if not principal.has_active_subscription():
        raise Forbidden("Your organization does not have an active subscription.")
    return principal


async def with_settings(principal: Annotated[Principal, Depends(subscribed)]) -> Principal:
    """403 without the `settings` permission (endpoints with no organization in the path)."""
    if not principal.has_permission("settings"):
        raise Forbidden("You do not have the `settings` permission.")
    return principal


async def org_member(
    principal: Annotated[Principal, Depends(subscribed)],
    organization_id: Annotated[uuid.UUID, Path(description="The caller's organization.")],
) -> Principal:
    """403 when the path's organization is not the caller's."""
    if organization_id != principal.organization_id:
        raise Forbidden("You do not have access to this organization.")
    return principal


async def org_settings(principal: Annotated[Principal, Depends(org_member)]) -> Principal:
    """403 without the `settings` permission in the path's organization."""
    if not principal.has_permission("settings"):
        raise Forbidden("You do not have the `settings` permission.")
    return principal


AuthenticatedPrincipal = Annotated[Principal, Depends(authenticated)]
SettingsPrincipal = Annotated[Principal, Depends(with_settings)]
OrgSettingsPrincipal = Annotated[Principal, Depends(org_settings)]
