"""Operator actions on the platform model (organizations, partnerships, users, tokens, assets)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from types import EllipsisType
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.kit.security import digest, hash_password_bounded, new_token_key, verify_password_bounded
from apps_api.models import FEATURES, PERMISSIONS, ApiToken, App, Asset, Organization, Partnership, User
from apps_api.models.base import utcnow


class PlatformError(ValueError):
    """An operator request that cannot be carried out (bad value); `field` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownObject(PlatformError):
    """The organization, user, token or app named does not exist (or the user was deleted)."""


class AlreadyTaken(PlatformError):
    """A value that must be unique is another object's (an email, an external id)."""


# Not given (keep the current value), as opposed to None (clear it).
Keep = EllipsisType
KEEP = ...
# Path keys of the operator API: the operator's external id, or `id:<uuid>` for our own id.
ID_PREFIX = "id:"
EXTERNAL_ID_MAX_LENGTH = 200


def _check_subset(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise PlatformError(
            f"unknown {what}: {', '.join(unknown)} (allowed: {', '.join(allowed)})", field=f"{what}s"
        )
    return sorted(set(values))


def check_external_id(value: str | None) -> str | None:
    """An external id as stored: not blank, at most 200 characters, never `id:...` (our ids' key)."""
    if value is None:
        return None
    if not value.strip() or value != value.strip():
        raise PlatformError("external_id must not be blank or padded with spaces", field="external_id")
    if len(value) > EXTERNAL_ID_MAX_LENGTH:
        raise PlatformError(
            f"external_id must be at most {EXTERNAL_ID_MAX_LENGTH} characters", field="external_id"
        )
    if value.startswith(ID_PREFIX) or "/" in value:
        raise PlatformError(
            f"external_id must not contain '/' or start with {ID_PREFIX!r}", field="external_id"
        )
    return value


def parse_key(key: str) -> tuple[uuid.UUID | None, str | None]:
    """(our id, None) for `id:<uuid>`, else (None, the external id); unknown when malformed."""
    if key.startswith(ID_PREFIX):
        try:
            return uuid.UUID(key.removeprefix(ID_PREFIX)), None
        except ValueError:
            raise UnknownObject(f"not an id: {key}") from None
    return None, key


async def create_organization(
    *,
    session: AsyncSession,
    name: str,
    features: list[str] | None = None,
    subscription_days: int | None = None,
    subscription_ends_at: datetime | None = None,
    subscription_active: bool = True,
    external_id: str | None = None,
) -> Organization:
    """Create an organization; without `subscription_days` or `_ends_at` the subscription never ends."""
    if not name.strip():
        raise PlatformError("organization name must not be blank", field="name")
    expires = utcnow() + timedelta(days=subscription_days) if subscription_days is not None else None
    external_id = check_external_id(external_id)
    if external_id is not None and await find_organization(session=session, external_id=external_id):
        raise AlreadyTaken(f"external_id already in use: {external_id}", field="external_id")
    organization = Organization(
        name=name,
        features=_check_subset(features or [], FEATURES, "feature"),
        subscription_active=subscription_active,
        subscription_expires_at=expires or subscription_ends_at,
        external_id=external_id,
    )
    session.add(organization)
    await session.flush()
    return organization


async def find_organization(*, session: AsyncSession, external_id: str) -> Organization | None:
    """The organization with this external id, if any."""
    return await session.scalar(select(Organization).where(Organization.external_id == external_id))


async def organization_by_key(*, session: AsyncSession, key: str) -> Organization:
    """The organization named by an operator API key (`id:<uuid>` or its external id)."""
    organization_id, external_id = parse_key(key)
    if organization_id is not None:
        return await get_organization(session=session, organization_id=organization_id)
    assert external_id is not None
    found = await find_organization(session=session, external_id=external_id)
    if found is None:
        raise UnknownObject(f"unknown organization: {key}")
    return found


def organizations() -> Select[Any]:
    """Every organization (the operator's list)."""
    return select(Organization)


async def update_organization(
    *,
    session: AsyncSession,
    organization: Organization,
    name: str | None = None,
    features: list[str] | None = None,
    subscription_ends_at: datetime | Keep | None = KEEP,
    external_id: str | Keep | None = KEEP,
) -> set[str]:
    """Change what is given (the row only); returns the features removed, whose consequences
    the caller carries out (`operator.service.set_features`)."""
    if name is not None:
        _rename_organization(organization, name)
    removed: set[str] = set()
    if features is not None:
        removed = _set_features(organization, features)
    if not isinstance(subscription_ends_at, EllipsisType):
        _set_subscription_end(organization, subscription_ends_at)
    if not isinstance(external_id, EllipsisType) and external_id != organization.external_id:
        external_id = check_external_id(external_id)
        if external_id is not None and await find_organization(session=session, external_id=external_id):
            raise AlreadyTaken(f"external_id already in use: {external_id}", field="external_id")
        organization.external_id = external_id
    await session.flush()
    return removed


def _rename_organization(organization: Organization, name: str) -> None:
    if not name.strip():
        raise PlatformError("organization name must not be blank", field="name")
    if name != organization.name:
        organization.name = name


def _set_features(organization: Organization, features: list[str]) -> set[str]:
    """Give the organization exactly these features; returns those it lost."""
    wanted = _check_subset(features, FEATURES, "feature")
    removed = set(organization.features) - set(wanted)
    if wanted != sorted(organization.features):
        organization.features = wanted
    return removed


def _set_subscription_end(organization: Organization, ends_at: datetime | None) -> None:
    """A live subscription until `ends_at` (None: without end); written only when it changes."""
    if ends_at != organization.subscription_expires_at or not organization.subscription_active:
        organization.subscription_expires_at = ends_at
        organization.subscription_active = True


async def get_organization(*, session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    """The organization with this id; UnknownObject otherwise."""
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise UnknownObject(f"unknown organization: {organization_id}")
    return organization


async def add_partnership(*, session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> Partnership:
    """Make two organizations partners (symmetric; idempotent)."""
    partnership, _ = await ensure_partnership(session=session, a=a, b=b)
    return partnership


async def ensure_partnership(
    *, session: AsyncSession, a: uuid.UUID, b: uuid.UUID
) -> tuple[Partnership, bool]:
    """Make two organizations partners; returns (the partnership, whether it is new)."""
    if a == b:
        raise PlatformError("an organization cannot partner with itself", field="partner")
    await get_organization(session=session, organization_id=a)
    await get_organization(session=session, organization_id=b)
    first, second = Partnership.ordered(a, b)
    existing = await session.get(Partnership, (first, second))
    if existing is not None:
        return existing, False
    partnership = Partnership(organization_a_id=first, organization_b_id=second)
    session.add(partnership)
    await session.flush()
    return partnership, True


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
    external_id: str | None = None,
) -> User:
    """Create a user; a password is stored only as an argon2id hash."""
    await get_organization(session=session, organization_id=organization_id)
    if password is not None and email is None:
        raise PlatformError("a password needs an email to log in with", field="password")
    if email is not None:
        email = await _free_email(session=session, email=email, user_id=None)
    external_id = check_external_id(external_id)
    if external_id is not None and await find_user(
        session=session, organization_id=organization_id, external_id=external_id
    ):
        raise AlreadyTaken(f"external_id already in use: {external_id}", field="external_id")
    user = User(
        external_id=external_id,
        organization_id=organization_id,
        permissions=_check_subset(permissions or [], PERMISSIONS, "permission"),
        email=email,
        password_hash=await hash_password_bounded(password) if password else None,
        first_name=first_name,
        last_name=last_name,
        alias=alias,
        is_bot=is_bot,
    )
    session.add(user)
    await session.flush()
    return user


async def _free_email(*, session: AsyncSession, email: str, user_id: uuid.UUID | None) -> str:
    """The email, trimmed, if it is an address no other live user has."""
    email = email.strip()
    if "@" not in email:
        raise PlatformError(f"not an email address: {email}", field="email")
    others = select(User.id).where(User.email.ilike(email), User.deleted_at.is_(None))
    if user_id is not None:
        others = others.where(User.id != user_id)
    taken = await session.scalar(others.limit(1))
    if taken is not None:
        raise AlreadyTaken(f"email already in use: {email}", field="email")
    return email


async def find_user(*, session: AsyncSession, organization_id: uuid.UUID, external_id: str) -> User | None:
    """The live user of the organization with this external id, if any."""
    return await session.scalar(
        select(User).where(
            User.organization_id == organization_id,
            User.external_id == external_id,
            User.deleted_at.is_(None),
        )
    )


async def user_by_key(*, session: AsyncSession, organization_id: uuid.UUID, key: str) -> User:
    """The organization's live user named by an operator API key (`id:<uuid>` or its external id)."""
    user_id, external_id = parse_key(key)
    if user_id is not None:
        user = await session.get(User, user_id)
        if user is None or user.organization_id != organization_id or user.deleted_at is not None:
            user = None
    else:
        assert external_id is not None
        user = await find_user(session=session, organization_id=organization_id, external_id=external_id)
    if user is None:
        raise UnknownObject(f"unknown user: {key}")
    return user


async def update_user(
    *,
    session: AsyncSession,
    user: User,
    email: str | Keep | None = KEEP,
    first_name: str | Keep | None = KEEP,
    last_name: str | Keep | None = KEEP,
    permissions: list[str] | None = None,
    password: str | None = None,
    external_id: str | Keep | None = KEEP,
) -> User:
    """Change what is given and differs; a new password or email ends the user's sessions.

    The same password again changes nothing (an operator's sync may send it every time).
    """
    ends_sessions = False
    if not isinstance(email, EllipsisType) and (email or None) != user.email:
        ends_sessions = await _change_email(session=session, user=user, email=email, password=password)
    _rename_user(user, first_name=first_name, last_name=last_name)
    if permissions is not None:
        _set_permissions(user, permissions)
    if password is not None:
        ends_sessions = await _change_password(user, password) or ends_sessions
    if not isinstance(external_id, EllipsisType) and external_id != user.external_id:
        await _change_user_external_id(session=session, user=user, external_id=external_id)
    await session.flush()
    if ends_sessions:
        await end_sessions(session=session, user_id=user.id)
        await session.refresh(user)
    return user


async def _change_email(
    *, session: AsyncSession, user: User, email: str | None, password: str | None
) -> bool:
    """Set a new email (None: none, refused while the user keeps a password); whether it changed."""
    if email is None:
        if user.password_hash is not None and password is None:
            raise PlatformError("a user with a password needs an email to log in with", field="email")
    else:
        email = await _free_email(session=session, email=email, user_id=user.id)
    if email == user.email:
        return False
    user.email = email
    return True


def _rename_user(user: User, *, first_name: str | Keep | None, last_name: str | Keep | None) -> None:
    for attribute, value in (("first_name", first_name), ("last_name", last_name)):
        if not isinstance(value, EllipsisType) and value != getattr(user, attribute):
            setattr(user, attribute, value)


def _set_permissions(user: User, permissions: list[str]) -> None:
    wanted = _check_subset(permissions, PERMISSIONS, "permission")
    if wanted != sorted(user.permissions):
        user.permissions = wanted


async def _change_password(user: User, password: str) -> bool:
    """Set the password unless it is the current one; whether it changed."""
    if user.email is None:
        raise PlatformError("a password needs an email to log in with", field="password")
    if await verify_password_bounded(user.password_hash, password):
        return False
    user.password_hash = await hash_password_bounded(password)
    return True


async def _change_user_external_id(*, session: AsyncSession, user: User, external_id: str | None) -> None:
    external_id = check_external_id(external_id)
    if external_id is not None and await find_user(
        session=session, organization_id=user.organization_id, external_id=external_id
    ):
        raise AlreadyTaken(f"external_id already in use: {external_id}", field="external_id")
    user.external_id = external_id


async def end_sessions(*, session: AsyncSession, user_id: uuid.UUID) -> None:
    """End every browser session of the user issued so far (their cookies carry the old epoch)."""
    await session.execute(update(User).where(User.id == user_id).values(session_epoch=User.session_epoch + 1))


async def set_password(*, session: AsyncSession, user_id: uuid.UUID, password: str) -> User:
    """Change a user's password (argon2id); ends every session logged in with the old one."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise UnknownObject(f"unknown user: {user_id}")
    if user.email is None:
        raise PlatformError(f"a user without an email cannot log in: {user_id}", field="password")
    user.password_hash = await hash_password_bounded(password)
    await session.flush()
    await end_sessions(session=session, user_id=user_id)
    await session.refresh(user)
    return user


async def delete_user(*, session: AsyncSession, user_id: uuid.UUID) -> User:
    """Soft-delete a user: their API tokens stop working and every browser session ends."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise UnknownObject(f"unknown user: {user_id}")
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
        raise UnknownObject(f"unknown user: {user_id}")
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


async def revoke_token(*, session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> ApiToken:
    """Revoke one of the user's API tokens (again: no change)."""
    token = await session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        raise UnknownObject(f"unknown token: {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
    return token


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
    """Record an image (an app icon) the organization's apps may use; the file stays where it is."""
    await get_organization(session=session, organization_id=organization_id)
    if not url.startswith(("https://", "http://")):
        raise PlatformError("asset url must be an absolute http(s) URL", field="url")
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
        raise UnknownObject(f"unknown app: {app_id}")
    app.is_approved = True
    await session.flush()
    return app
