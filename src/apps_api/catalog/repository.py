"""What every domain reads of an app: its row and embedded columns, and the owner's lookups.

Below `apps` and `installations` (both use it), so neither imports the other's queries.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, exists, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from apps_api.kit.driver import CompiledStatement, ReadConnection
from apps_api.models import App, Asset, Organization, User


def app_view_options() -> Sequence[Any]:
    """Eager loads for the embedded objects every app view shows."""
    return (
        joinedload(App.owned_by_organization),
        joinedload(App.icon_asset),
    )


def owned_app_options() -> Sequence[Any]:
    """Eager loads for the owned view, which also embeds who created and updated the app."""
    return (
        *app_view_options(),
        joinedload(App.created_by_user),
        joinedload(App.updated_by_user),
    )


async def one_app(session: AsyncSession, statement: Select[Any]) -> App | None:
    app: App | None = (
        (await session.execute(statement.execution_options(populate_existing=True)))
        .unique()
        .scalar_one_or_none()
    )
    return app


def owned_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    return select(App).where(App.owned_by_organization_id == organization_id)


async def get_owned_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = owned_apps(organization_id=organization_id).where(App.id == app_id)
    return await one_app(session, statement.options(*owned_app_options()))


async def owned_app_id(
    *, db: AsyncSession | ReadConnection, organization_id: uuid.UUID, app_id: uuid.UUID
) -> uuid.UUID | None:
    """The app's id if the organization owns it; no embedded objects (routes that only need the id)."""
    rows = await _OWNED_APP_ID.fetch(db, organization_id=organization_id, app_id=app_id)
    return rows[0]["id"] if rows else None


APPS = App.__table__
_owner = Organization.__table__.alias("owner")
_icon = Asset.__table__.alias("icon")
CREATED_BY = User.__table__.alias("created_by")
UPDATED_BY = User.__table__.alias("updated_by")
USER_COLUMNS = ("id", "first_name", "last_name", "alias", "organization_id", "is_bot", "avatar_url")

_APP_BASE_NAMES = (
    "id",
    "name",
    "description",
    "owned_by_organization_id",
    "icon_asset_id",
    "is_app_user_required",
    "installation_count",
    "created_at",
    "updated_at",
    "required_scopes",
)
_ICON_NAMES = ("url", "kind", "content_type", "size", "width", "height")


def _app_embed_columns(prefix: str) -> tuple[ColumnElement[Any], ...]:
    """The embedded owner and icon of `AppBase`."""
    return (
        _owner.c.name.label(f"{prefix}owner_name"),
        *(_icon.c[name].label(f"{prefix}icon_{name}") for name in _ICON_NAMES),
    )


def app_base_columns(prefix: str = "") -> tuple[ColumnElement[Any], ...]:
    """The columns of `AppBase` and its embedded owner and icon, labelled as
    `views.app_base_json(row, prefix)` reads them (from `APP_BASE_FROM`)."""
    return (*(APPS.c[name].label(prefix + name) for name in _APP_BASE_NAMES), *_app_embed_columns(prefix))


_APP_EMBED_COLUMNS = _app_embed_columns("")
APP_BASE_COLUMNS = app_base_columns()
APP_BASE_FROM = APPS.join(_owner, _owner.c.id == APPS.c.owned_by_organization_id).outerjoin(
    _icon, _icon.c.id == APPS.c.icon_asset_id
)

# An app's whole row and what its base view embeds (owner name, icon), labelled as
# schemas.app_base_json() reads them: for writes that answer with a view of the row they checked.
APP_ROW_COLUMNS: tuple[ColumnElement[Any], ...] = (*APPS.c, *_APP_EMBED_COLUMNS)
APP_ROW_FROM = APP_BASE_FROM


# One primary-key probe per request of the webhook log routes.
def owned_by_caller() -> ColumnElement[bool]:
    """The path's app (`:app_id`) is the caller's organization's (`:organization_id`): an uncorrelated
    EXISTS, evaluated once per statement, so a list of the app's rows needs no probe before it."""
    return exists(
        select(literal_column("1")).where(
            APPS.c.id == bindparam("app_id"), APPS.c.owned_by_organization_id == bindparam("organization_id")
        )
    )


_OWNED_APP_ID = CompiledStatement(
    select(APPS.c.id).where(
        APPS.c.owned_by_organization_id == bindparam("organization_id"), APPS.c.id == bindparam("app_id")
    )
)
