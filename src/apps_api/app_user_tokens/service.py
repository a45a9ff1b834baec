"""Mint, list and revoke the API tokens of an installation's app user (docs/permissions.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.errors import BadRequest, NotFound
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import ApiToken, AppInstallation
from apps_api.models.base import utcnow
from apps_api.platform.service import create_token


def tokens_of(*, installation: AppInstallation) -> Select[Any]:
    """The live (unrevoked) tokens of the installation's app user; the key is never stored."""
    return select(ApiToken).where(
        ApiToken.app_installation_id == installation.id, ApiToken.revoked_at.is_(None)
    )


_TOKENS = cast(Table, ApiToken.__table__)
# `tokens_of()` compiled for the list (a GET, on its read connection).
TOKENS_PAGE = KeysetQuery(
    columns=(_TOKENS.c.id, _TOKENS.c.user_id, _TOKENS.c.created_at, _TOKENS.c.expires_at),
    from_=_TOKENS,
    created_at=_TOKENS.c.created_at,
    id_=_TOKENS.c.id,
)
TOKENS_CONDITIONS = (
    _TOKENS.c.app_installation_id == bindparam("installation_id"),
    _TOKENS.c.revoked_at.is_(None),
)


async def mint(
    *, session: AsyncSession, installation: AppInstallation, expires_at: datetime | None
) -> tuple[ApiToken, str]:
    """A new token of the installation's app user; returns (row, key). 404 without an app user."""
    if installation.app_user_id is None:
        raise NotFound("The installation has no app user.")
    if expires_at is not None:
        expires_at = expires_at if expires_at.tzinfo is not None else expires_at.replace(tzinfo=UTC)
        if expires_at <= utcnow():
            raise BadRequest.field("expires_at", "Must be in the future.")
    # An API token tied to the installation: uninstalling (and so deleting the app) revokes it.
    return await create_token(
        session=session,
        user_id=installation.app_user_id,
        expires_at=expires_at,
        app_installation_id=installation.id,
    )


async def revoke(*, session: AsyncSession, installation: AppInstallation, token_id: Any) -> None:
    """Revoke one token of the installation's app user; 404 if it has no such live token."""
    revoked = await session.scalar(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            ApiToken.app_installation_id == installation.id,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .returning(ApiToken.id)
    )
    if revoked is None:
        raise NotFound("No app-user token found with the given ID.")
