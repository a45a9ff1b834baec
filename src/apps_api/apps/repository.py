"""Queries for apps; each turns "what may this caller see" into a WHERE clause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from apps_api.apps.visibility import is_partner_app_of, is_public
from apps_api.kit.driver import SessionStatement
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import App, AppInstallation, AppShare, Asset, Organization, User


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


async def _one(session: AsyncSession, statement: Select[Any]) -> App | None:
    app: App | None = (
        (await session.execute(statement.execution_options(populate_existing=True)))
        .unique()
        .scalar_one_or_none()
    )
    return app


def public_apps() -> Select[Any]:
    return select(App).where(is_public())


async def get_public_app(*, session: AsyncSession, app_id: uuid.UUID) -> App | None:
    """One approved public app, with its embedded objects."""
    return await _one(session, public_apps().where(App.id == app_id).options(*app_view_options()))


def partner_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    """Apps of the organization's partners that are available to partners or shared with it."""
    return select(App).where(is_partner_app_of(organization_id))


async def get_partner_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = partner_apps(organization_id=organization_id).where(App.id == app_id)
    return await _one(session, statement.options(*app_view_options()))


def owned_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    return select(App).where(App.owned_by_organization_id == organization_id)


async def get_owned_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = owned_apps(organization_id=organization_id).where(App.id == app_id)
    return await _one(session, statement.options(*owned_app_options()))


async def owned_app_id(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> uuid.UUID | None:
    """The app's id if the organization owns it; no embedded objects (routes that only need the id)."""
    rows = await _OWNED_APP_ID.fetch(session, organization_id=organization_id, app_id=app_id)
    return rows[0]["id"] if rows else None


def installed_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    """Apps installed in the organization (one installation per app, so no duplicates)."""
    return select(App).join(
        AppInstallation,
        and_(AppInstallation.app_id == App.id, AppInstallation.organization_id == organization_id),
    )


async def get_installed_app(
    *, session: AsyncSession, organization_id: uuid.UUID, app_id: uuid.UUID
) -> App | None:
    statement = installed_apps(organization_id=organization_id).where(App.id == app_id)
    return await _one(session, statement.options(*app_view_options()))


def app_shares(*, app_id: uuid.UUID) -> Select[Any]:
    return select(AppShare).where(AppShare.app_id == app_id)


def app_share_options() -> Sequence[Any]:
    return (joinedload(AppShare.organization),)


async def get_app_share(*, session: AsyncSession, app_id: uuid.UUID, share_id: uuid.UUID) -> AppShare | None:
    statement = app_shares(app_id=app_id).where(AppShare.id == share_id).options(*app_share_options())
    share: AppShare | None = (await session.execute(statement)).unique().scalar_one_or_none()
    return share


# --- the hot lists as compiled Core statements (rows straight to the views, apps/schemas.py) ----

_apps = App.__table__
_owner = Organization.__table__.alias("owner")
_icon = Asset.__table__.alias("icon")
_created_by = User.__table__.alias("created_by")
_updated_by = User.__table__.alias("updated_by")
_USER_COLUMNS = ("id", "first_name", "last_name", "alias", "organization_id", "is_bot", "avatar_url")

# The embedded owner and icon of `AppBase`.
_APP_EMBED_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _owner.c.name.label("owner_name"),
    *(
        _icon.c[name].label(f"icon_{name}")
        for name in ("url", "kind", "content_type", "size", "width", "height")
    ),
)
# The columns of `AppBase` (and its embedded owner and icon), labelled as schemas.app_base() reads them.
_APP_BASE_COLUMNS: tuple[ColumnElement[Any], ...] = (
    *(
        _apps.c[name]
        for name in (
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
    ),
    *_APP_EMBED_COLUMNS,
)
_APP_BASE_FROM = _apps.join(_owner, _owner.c.id == _apps.c.owned_by_organization_id).outerjoin(
    _icon, _icon.c.id == _apps.c.icon_asset_id
)

# An app's whole row and what its base view embeds (owner name, icon), labelled as
# schemas.app_base_json() reads them: for writes that answer with a view of the row they checked.
APP_ROW_COLUMNS: tuple[ColumnElement[Any], ...] = (*_apps.c, *_APP_EMBED_COLUMNS)
APP_ROW_FROM = _APP_BASE_FROM

PUBLIC_APPS_PAGE = KeysetQuery(
    columns=_APP_BASE_COLUMNS, from_=_APP_BASE_FROM, created_at=_apps.c.created_at, id_=_apps.c.id
)
# Spelled as the partial index `ix_apps_public_created` is (see visibility.is_public()).
PUBLIC_APPS_CONDITIONS = (_apps.c.is_available_to_anyone & _apps.c.is_approved,)

OWNED_APPS_PAGE = KeysetQuery(
    columns=(
        *_APP_BASE_COLUMNS,
        *(
            _apps.c[name]
            for name in (
                "is_available_to_anyone",
                "is_available_to_partners",
                "app_user_default_first_name",
                "app_user_default_last_name",
                "app_user_default_alias",
                "terms_of_service_url",
                "privacy_policy_url",
                "trigger_url",
                "trigger_conditions",
                "allowed_redirect_uris",
                "created_by_user_id",
                "updated_by_user_id",
                "secret",
            )
        ),
        *(_created_by.c[name].label(f"created_by_{name}") for name in _USER_COLUMNS),
        *(_updated_by.c[name].label(f"updated_by_{name}") for name in _USER_COLUMNS),
    ),
    from_=_APP_BASE_FROM.outerjoin(_created_by, _created_by.c.id == _apps.c.created_by_user_id).outerjoin(
        _updated_by, _updated_by.c.id == _apps.c.updated_by_user_id
    ),
    created_at=_apps.c.created_at,
    id_=_apps.c.id,
)
OWNED_APPS_CONDITIONS = (_apps.c.owned_by_organization_id == bindparam("organization_id"),)

# One primary-key probe per request of the webhook log routes.
_OWNED_APP_ID = SessionStatement(
    select(_apps.c.id).where(
        _apps.c.owned_by_organization_id == bindparam("organization_id"), _apps.c.id == bindparam("app_id")
    )
)
