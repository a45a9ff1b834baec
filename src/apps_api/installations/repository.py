"""Queries for installations: the installing organization's and the app owner's.

The ORM loads serve writes (and the console); GET routes read compiled statements on their
read connection, each row holding what the installation's view embeds (`schemas.installation_row_json`).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.catalog.repository import APP_BASE_FROM, APPS, USER_COLUMNS, app_base_columns
from apps_api.installations.schemas import APP_PREFIX, USER_PREFIX
from apps_api.installations.service import installation_options
from apps_api.kit.driver import CompiledStatement
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import AppInstallation, Organization, User


def organization_installations(*, organization_id: uuid.UUID) -> Select[Any]:
    """Installations in the organization."""
    return select(AppInstallation).where(AppInstallation.organization_id == organization_id)


def app_installations(*, app_id: uuid.UUID) -> Select[Any]:
    """Installations of one app, in any organization (the owner's view)."""
    return select(AppInstallation).where(AppInstallation.app_id == app_id)


async def _one(session: AsyncSession, statement: Select[Any]) -> AppInstallation | None:
    statement = statement.options(*installation_options()).execution_options(populate_existing=True)
    installation: AppInstallation | None = (await session.execute(statement)).unique().scalar_one_or_none()
    return installation


async def get_organization_installation(
    *, session: AsyncSession, organization_id: uuid.UUID, installation_id: uuid.UUID
) -> AppInstallation | None:
    statement = organization_installations(organization_id=organization_id)
    return await _one(session, statement.where(AppInstallation.id == installation_id))


async def get_app_installation(
    *, session: AsyncSession, app_id: uuid.UUID, installation_id: uuid.UUID
) -> AppInstallation | None:
    statement = app_installations(app_id=app_id)
    return await _one(session, statement.where(AppInstallation.id == installation_id))


async def get_app_installation_in(
    *, session: AsyncSession, app_id: uuid.UUID, organization_id: uuid.UUID
) -> AppInstallation | None:
    statement = app_installations(app_id=app_id)
    return await _one(session, statement.where(AppInstallation.organization_id == organization_id))


# --- compiled reads (GET routes, on the read connection) -------------------------------------

INSTALLATIONS = cast(Table, AppInstallation.__table__)
_INSTALLER = cast(Table, Organization.__table__).alias("installer")
_APP_USER = cast(Table, User.__table__).alias("app_user")
# The installed app's and app user's columns are prefixed: the installation's own (`id`,
# `app_id`, ...) keep their names, as the keyset pages need (`created_at`, `id`).
_INSTALLATION_NAMES = (
    "id",
    "organization_id",
    "app_id",
    "app_user_id",
    "allowed_scopes",
    "created_at",
    "updated_at",
)
INSTALLATION_VIEW_COLUMNS = (
    *(INSTALLATIONS.c[name] for name in _INSTALLATION_NAMES),
    _INSTALLER.c.name.label("organization_name"),
    *app_base_columns(APP_PREFIX),
    APPS.c.trigger_conditions.label(APP_PREFIX + "trigger_conditions"),
    *(_APP_USER.c[name].label(USER_PREFIX + name) for name in USER_COLUMNS),
)
INSTALLATION_VIEW_FROM = (
    APP_BASE_FROM.join(INSTALLATIONS, INSTALLATIONS.c.app_id == APPS.c.id)
    .join(_INSTALLER, _INSTALLER.c.id == INSTALLATIONS.c.organization_id)
    .outerjoin(_APP_USER, _APP_USER.c.id == INSTALLATIONS.c.app_user_id)
)

_IN_ORGANIZATION = INSTALLATIONS.c.organization_id == bindparam("organization_id")
_OF_APP = INSTALLATIONS.c.app_id == bindparam("app_id")
_THE_INSTALLATION = INSTALLATIONS.c.id == bindparam("installation_id")
# The app's owner is checked on the joined app row: a hit needs no separate ownership probe.
_OWNED = APPS.c.owned_by_organization_id == bindparam("organization_id")


def _installations_page() -> KeysetQuery:
    return KeysetQuery(
        columns=INSTALLATION_VIEW_COLUMNS,
        from_=INSTALLATION_VIEW_FROM,
        created_at=INSTALLATIONS.c.created_at,
        id_=INSTALLATIONS.c.id,
    )


# One query each (a KeysetQuery caches its statements by shape, not by conditions).
ORGANIZATION_INSTALLATIONS_PAGE = _installations_page()
ORGANIZATION_INSTALLATIONS_CONDITIONS = (_IN_ORGANIZATION,)
APP_INSTALLATIONS_PAGE = _installations_page()
APP_INSTALLATIONS_CONDITIONS = (_OF_APP,)

ORGANIZATION_INSTALLATION = CompiledStatement(
    select(*INSTALLATION_VIEW_COLUMNS)
    .select_from(INSTALLATION_VIEW_FROM)
    .where(_IN_ORGANIZATION, _THE_INSTALLATION)
)
OWNED_INSTALLATION = CompiledStatement(
    select(*INSTALLATION_VIEW_COLUMNS)
    .select_from(INSTALLATION_VIEW_FROM)
    .where(_OF_APP, _THE_INSTALLATION, _OWNED)
)
# What the app-user token list needs of the installation.
OWNED_INSTALLATION_KEYS = CompiledStatement(
    select(INSTALLATIONS.c.id, INSTALLATIONS.c.organization_id)
    .select_from(INSTALLATIONS.join(APPS, APPS.c.id == INSTALLATIONS.c.app_id))
    .where(_OF_APP, _THE_INSTALLATION, _OWNED)
)
