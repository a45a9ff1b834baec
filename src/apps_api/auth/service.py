"""Resolve credentials to a principal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
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


async def authenticate_token(*, session: AsyncSession, key: str) -> Principal | None:
    """Return the principal of a live API token key, or None."""
    now = utcnow()
    row = (
        await session.execute(
            select(ApiToken, User, Organization)
            .join(User, User.id == ApiToken.user_id)
            .join(Organization, Organization.id == User.organization_id)
            .where(
                ApiToken.key_digest == digest(key),
                ApiToken.revoked_at.is_(None),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
                User.deleted_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    token, user, organization = row
    return Principal(user=user, organization=organization, token_id=token.id)
