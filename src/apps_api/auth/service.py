"""Resolve credentials to a principal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import digest
from apps_api.models import ApiToken, Organization, User
from apps_api.models.base import utcnow


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, their organization, and how they authenticated."""

    user: User
    organization: Organization
    token_id: uuid.UUID | None = None
    # Set when the call is authenticated as an app (GIOSGAPP trigger token).
    app_id: uuid.UUID | None = None


# Built once (every request runs it): the live token's user and organization in one indexed lookup.
_TOKEN_PRINCIPAL = (
    select(ApiToken.id, User, Organization)
    .join(User, User.id == ApiToken.user_id)
    .join(Organization, Organization.id == User.organization_id)
    .where(
        ApiToken.key_digest == bindparam("digest"),
        ApiToken.revoked_at.is_(None),
        (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > bindparam("now")),
        User.deleted_at.is_(None),
    )
)


async def authenticate_token(*, session: AsyncSession, key: str) -> Principal | None:
    """Return the principal of a live API token key, or None."""
    row = (await session.execute(_TOKEN_PRINCIPAL, {"digest": digest(key), "now": utcnow()})).first()
    if row is None:
        return None
    token_id, user, organization = row
    return Principal(user=user, organization=organization, token_id=token_id)
