"""Operator changes with their consequences: the one path of the operator API and `apps-api admin`.

Removing a feature, a permission or a partnership has the same effect whichever way it comes:
- `apps` removed: every installation in the organization is uninstalled (events, uninstall triggers);
- `app_provider` removed: the organization's apps stop being available to partners and anyone
  (`apps.service.withdraw_offers`), which uninstalls them where no share keeps them;
- a partnership removed: `installations.cascade.end_partnership`;
- a permission removed: the user's own access changes at once; installations the user granted
  keep their scopes (an installation belongs to the organization, not to whoever clicked).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.apps import service as apps
from apps_api.installations import cascade
from apps_api.models import Organization, User
from apps_api.models.base import utcnow
from apps_api.operator.schemas import (
    OrganizationCreate,
    OrganizationPatch,
    OrganizationPut,
    UserCreate,
    UserPatch,
    UserPut,
)
from apps_api.platform import service as platform
from apps_api.platform.service import KEEP, Keep

T = TypeVar("T")


async def withdraw_features(
    *, session: AsyncSession, organization_id: uuid.UUID, removed: set[str], actor_user_id: uuid.UUID | None
) -> list[uuid.UUID]:
    """Carry out the loss of features; returns the ids of the installations removed."""
    uninstalled: list[uuid.UUID] = []
    if "apps" in removed:
        uninstalled += await cascade.uninstall_all_in(
            session=session, organization_id=organization_id, actor_user_id=actor_user_id
        )
    if "app_provider" in removed:
        uninstalled += await apps.withdraw_offers(
            session=session, organization_id=organization_id, actor_user_id=actor_user_id
        )
    return uninstalled


async def update_organization(
    *,
    session: AsyncSession,
    organization: Organization,
    name: str | None = None,
    features: list[str] | None = None,
    subscription_ends_at: datetime | Keep | None = KEEP,
    external_id: str | Keep | None = KEEP,
) -> list[uuid.UUID]:
    """Change the given attributes; returns the installations a lost feature removed."""
    removed = await platform.update_organization(
        session=session,
        organization=organization,
        name=name,
        features=features,
        subscription_ends_at=subscription_ends_at,
        external_id=external_id,
    )
    return await withdraw_features(
        session=session, organization_id=organization.id, removed=removed, actor_user_id=None
    )


async def _find_or_create(
    *, session: AsyncSession, find: Callable[[], Awaitable[T | None]], create: Callable[[], Awaitable[T]]
) -> tuple[T, bool]:
    """What `find` finds, else what `create` makes (in a savepoint); returns (it, whether it is new)."""
    existing = await find()
    if existing is not None:
        return existing, False
    try:
        async with session.begin_nested():
            created = await create()
        return created, True
    except IntegrityError:
        # A concurrent PUT of the same external id created it first: update that one.
        existing = await find()
        if existing is None:
            raise
        return existing, False


async def create_organization(
    *, session: AsyncSession, data: OrganizationCreate | OrganizationPut, external_id: str | None
) -> Organization:
    """A new organization with the body's attributes (AlreadyTaken when the external id is)."""
    return await platform.create_organization(
        session=session,
        name=data.name,
        features=data.features or [],
        subscription_ends_at=data.subscription_ends_at,
        external_id=external_id,
    )


async def put_organization(
    *, session: AsyncSession, key: str, data: OrganizationPut
) -> tuple[Organization, bool]:
    """The whole state of the organization a key names: on `id:<uuid>` it must exist, on an external
    id it is created when new; returns (it, whether it is new)."""
    _, external_id = platform.parse_key(key)
    if external_id is None:
        organization, created = await platform.organization_by_key(session=session, key=key), False
    else:
        platform.check_external_id(external_id)
        organization, created = await _find_or_create(
            session=session,
            find=partial(platform.find_organization, session=session, external_id=external_id),
            create=partial(create_organization, session=session, data=data, external_id=external_id),
        )
    if not created:
        await update_organization(
            session=session,
            organization=organization,
            name=data.name,
            features=data.features,
            subscription_ends_at=data.subscription_ends_at,
        )
    return organization, created


async def patch_organization(
    *, session: AsyncSession, organization: Organization, data: OrganizationPatch
) -> None:
    """Change the attributes the body gives (a null end or external id clears it)."""
    given = data.model_fields_set
    await update_organization(
        session=session,
        organization=organization,
        name=data.name,
        features=data.features,
        subscription_ends_at=data.subscription_ends_at if "subscription_ends_at" in given else KEEP,
        external_id=data.external_id if "external_id" in given else KEEP,
    )


async def set_features(
    *, session: AsyncSession, organization_id: uuid.UUID, features: list[str]
) -> tuple[Organization, list[uuid.UUID]]:
    """Give the organization exactly these features; returns it and the installations removed."""
    organization = await platform.get_organization(session=session, organization_id=organization_id)
    uninstalled = await update_organization(session=session, organization=organization, features=features)
    return organization, uninstalled


async def set_subscription(
    *, session: AsyncSession, organization_id: uuid.UUID, days: int | None
) -> Organization:
    """Make the subscription live for `days` from now (None: without end; 0 or less: ended now)."""
    organization = await platform.get_organization(session=session, organization_id=organization_id)
    ends_at = None if days is None else utcnow() + timedelta(days=days)
    await update_organization(session=session, organization=organization, subscription_ends_at=ends_at)
    return organization


async def set_permissions(*, session: AsyncSession, user_id: uuid.UUID, permissions: list[str]) -> User:
    """Give the user exactly these permissions (what they granted to installations stays)."""
    user = await session.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise platform.UnknownObject(f"unknown user: {user_id}")
    return await platform.update_user(session=session, user=user, permissions=permissions)


async def create_user(
    *, session: AsyncSession, organization: Organization, data: UserCreate | UserPut, external_id: str | None
) -> User:
    """A new user of the organization with the body's attributes (AlreadyTaken: email, external id)."""
    return await platform.create_user(
        session=session,
        organization_id=organization.id,
        external_id=external_id,
        email=data.email,
        first_name=data.first_name,
        last_name=data.last_name,
        permissions=data.permissions or [],
        password=data.password,
    )


async def put_user(
    *, session: AsyncSession, organization: Organization, key: str, data: UserPut
) -> tuple[User, bool]:
    """The whole state of the organization's user a key names: on `id:<uuid>` it must exist, on an
    external id it is created when new; returns (it, whether it is new)."""
    _, external_id = platform.parse_key(key)
    if external_id is None:
        user = await platform.user_by_key(session=session, organization_id=organization.id, key=key)
    else:
        platform.check_external_id(external_id)
        user, created = await _find_or_create(
            session=session,
            find=partial(
                platform.find_user, session=session, organization_id=organization.id, external_id=external_id
            ),
            create=partial(
                create_user, session=session, organization=organization, data=data, external_id=external_id
            ),
        )
        if created:
            return user, True
    updated = await platform.update_user(
        session=session,
        user=user,
        email=data.email,
        first_name=data.first_name,
        last_name=data.last_name,
        permissions=data.permissions,
        password=data.password,
    )
    return updated, False


async def patch_user(*, session: AsyncSession, user: User, data: UserPatch) -> User:
    """Change the attributes the body gives (a null email, name or external id clears it)."""
    given = data.model_fields_set
    return await platform.update_user(
        session=session,
        user=user,
        email=data.email if "email" in given else KEEP,
        first_name=data.first_name if "first_name" in given else KEEP,
        last_name=data.last_name if "last_name" in given else KEEP,
        permissions=data.permissions,
        password=data.password,
        external_id=data.external_id if "external_id" in given else KEEP,
    )


async def end_partnership(
    *, session: AsyncSession, a: uuid.UUID, b: uuid.UUID
) -> tuple[bool, list[uuid.UUID]]:
    """End a partnership with its consequences (shares dropped, what may no longer stay uninstalled)."""
    return await cascade.end_partnership(session=session, a=a, b=b)
