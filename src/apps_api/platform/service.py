"""Operator actions on the platform model (organizations, partnerships, users, tokens, assets)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import digest, hash_password, new_token_key
from apps_api.models import FEATURES, PERMISSIONS, ApiToken, App, Asset, Organization, Partnership, User
from apps_api.models.base import utcnow


class PlatformError(ValueError):
    """An operator request that cannot be carried out (unknown id, bad value)."""


def _check_subset(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise PlatformError(f"unknown {what}: {', '.join(unknown)} (allowed: {', '.join(allowed)})")
    return sorted(set(values))


async def create_organization(
    *,
    session: AsyncSession,
    name: str,
    features: list[str] | None = None,
    subscription_days: int | None = None,
    subscription_active: bool = True,
) -> Organization:
    """Create an organization; `subscription_days=None` means a subscription without expiry."""
    if not name.strip():
        raise PlatformError("organization name must not be blank")
    expires = utcnow() + timedelta(days=subscription_days) if subscription_days is not None else None
    organization = Organization(
        name=name,
        features=_check_subset(features or [], FEATURES, "feature"),
        subscription_active=subscription_active,
        subscription_expires_at=expires,
    )
    session.add(organization)
    await session.flush()
    return organization


async def get_organization(*, session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise PlatformError(f"unknown organization: {organization_id}")
    return organization


async def add_partnership(*, session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> Partnership:
    """Make two organizations partners (symmetric; idempotent)."""
    if a == b:
        raise PlatformError("an organization cannot partner with itself")
    await get_organization(session=session, organization_id=a)
    await get_organization(session=session, organization_id=b)
    first, second = Partnership.ordered(a, b)
    existing = await session.get(Partnership, (first, second))
    if existing is not None:
        return existing
    partnership = Partnership(organization_a_id=first, organization_b_id=second)
    session.add(partnership)
    await session.flush()
    return partnership


async def remove_partnership(*, session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> bool:
    """Remove a partnership row; callers uninstall what the partner may no longer install."""
    first, second = Partnership.ordered(a, b)
    result = await session.execute(
        delete(Partnership).where(
            Partnership.organization_a_id == first, Partnership.organization_b_id == second
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def are_partners(*, session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> bool:
    first, second = Partnership.ordered(a, b)
    return await session.get(Partnership, (first, second)) is not None


async def create_user(
    *,
    session: AsyncSession,
    organization_id: uuid.UUID,
    permissions: list[str] | None = None,
    email: str | None = None,
    password: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    alias: str | None = None,
    is_bot: bool = False,
) -> User:
    """Create a user; a password is stored only as an argon2id hash."""
    await get_organization(session=session, organization_id=organization_id)
    if password is not None and email is None:
        raise PlatformError("a password needs an email to log in with")
    if email is not None:
        email = email.strip()
        if "@" not in email:
            raise PlatformError(f"not an email address: {email}")
        taken = await session.scalar(
            select(User.id).where(User.email.ilike(email), User.deleted_at.is_(None)).limit(1)
        )
        if taken is not None:
            raise PlatformError(f"email already in use: {email}")
    user = User(
        organization_id=organization_id,
        permissions=_check_subset(permissions or [], PERMISSIONS, "permission"),
        email=email,
        password_hash=hash_password(password) if password else None,
        first_name=first_name,
        last_name=last_name,
        alias=alias,
        is_bot=is_bot,
    )
    session.add(user)
    await session.flush()
    return user


async def end_sessions(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """End every browser session of the user issued so far (their cookies carry the old epoch)."""
    await session.execute(update(User).where(User.id == user_id).values(session_epoch=User.session_epoch + 1))


async def set_password(*, session: AsyncSession, user_id: uuid.UUID, password: str) -> User:
    """Change a user's password (argon2id); ends every session logged in with the old one."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None or user.email is None:
        raise PlatformError(f"unknown user, or a user without an email: {user_id}")
    user.password_hash = hash_password(password)
    await session.flush()
    await end_sessions(session=session, user_id=user_id)
    await session.refresh(user)
    return user


async def delete_user(*, session: AsyncSession, user_id: uuid.UUID) -> User:
    """Soft-delete a user: their API tokens stop working and every browser session ends."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise PlatformError(f"unknown user: {user_id}")
    user.deleted_at = utcnow()
    await session.flush()
    await end_sessions(session=session, user_id=user_id)
    await session.refresh(user)
    return user


async def create_token(
    *,
    session: AsyncSession,
    user_id: uuid.UUID,
    expires_at: datetime | None = None,
    app_installation_id: uuid.UUID | None = None,
) -> tuple[ApiToken, str]:
    """Mint an API token; returns (row, key). The key is not stored and cannot be shown again."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise PlatformError(f"unknown user: {user_id}")
    key = new_token_key()
    token = ApiToken(
        user_id=user_id,
        key_digest=digest(key),
        key_prefix=key[:8],
        expires_at=expires_at,
        app_installation_id=app_installation_id,
    )
    session.add(token)
    await session.flush()
    return token, key


async def create_asset(
    *,
    session: AsyncSession,
    organization_id: uuid.UUID,
    url: str,
    kind: str = "image",
    content_type: str | None = None,
    size: int | None = None,
    width: int | None = None,
    height: int | None = None,
) -> Asset:
    await get_organization(session=session, organization_id=organization_id)
    if not url.startswith(("https://", "http://")):
        raise PlatformError("asset url must be an absolute http(s) URL")
    asset = Asset(
        organization_id=organization_id,
        url=url,
        kind=kind,
        content_type=content_type,
        size=size,
        width=width,
        height=height,
    )
    session.add(asset)
    await session.flush()
    return asset


async def approve_app(*, session: AsyncSession, app_id: uuid.UUID) -> App:
    """Mark an app approved by the operator, so it is listed publicly while available to anyone."""
    app = await session.get(App, app_id)
    if app is None:
        raise PlatformError(f"unknown app: {app_id}")
    app.is_approved = True
    await session.flush()
    return app
