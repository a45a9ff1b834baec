"""Queries for apps; each turns "what may this caller see" into a WHERE clause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from apps_api.catalog.repository import (
    APP_BASE_COLUMNS,
    APP_BASE_FROM,
    APPS,
    CREATED_BY,
    UPDATED_BY,
    USER_COLUMNS,
)
from apps_api.catalog.visibility import is_partner_app_of, is_public
from apps_api.kit.driver import CompiledStatement
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import App, AppInstallation, AppShare, Organization


def public_apps() -> Select[Any]:
    return select(App).where(is_public())


def partner_apps(*, organization_id: uuid.UUID) -> Select[Any]:
    """Apps of the organization's partners that are available to partners or shared with it."""
    return select(App).where(is_partner_app_of(organization_id))


def app_shares(*, app_id: uuid.UUID) -> Select[Any]:
    return select(AppShare).where(AppShare.app_id == app_id)


def app_share_options() -> Sequence[Any]:
    return (joinedload(AppShare.organization),)


async def get_app_share(*, session: AsyncSession, app_id: uuid.UUID, share_id: uuid.UUID) -> AppShare | None:
    statement = app_shares(app_id=app_id).where(AppShare.id == share_id).options(*app_share_options())
    share: AppShare | None = (await session.execute(statement)).unique().scalar_one_or_none()
    return share


# --- the hot lists as compiled Core statements (rows straight to the views, apps/schemas.py) ----

PUBLIC_APPS_PAGE = KeysetQuery(
    columns=APP_BASE_COLUMNS, from_=APP_BASE_FROM, created_at=APPS.c.created_at, id_=APPS.c.id
)
PUBLIC_APPS_CONDITIONS = (is_public(),)

OWNED_APPS_PAGE = KeysetQuery(
    columns=(
        *APP_BASE_COLUMNS,
        *(
            APPS.c[name]
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
        *(CREATED_BY.c[name].label(f"created_by_{name}") for name in USER_COLUMNS),
        *(UPDATED_BY.c[name].label(f"updated_by_{name}") for name in USER_COLUMNS),
    ),
    from_=APP_BASE_FROM.outerjoin(CREATED_BY, CREATED_BY.c.id == APPS.c.created_by_user_id).outerjoin(
        UPDATED_BY, UPDATED_BY.c.id == APPS.c.updated_by_user_id
    ),
    created_at=APPS.c.created_at,
    id_=APPS.c.id,
)
OWNED_APPS_CONDITIONS = (APPS.c.owned_by_organization_id == bindparam("organization_id"),)
# One owned app in the owned view's columns (the list's row, so the same view function).
OWNED_APP = CompiledStatement(
    select(*OWNED_APPS_PAGE.columns)
    .select_from(OWNED_APPS_PAGE.from_)
    .where(*OWNED_APPS_CONDITIONS, APPS.c.id == bindparam("app_id"))
)

_installations = AppInstallation.__table__
INSTALLED_APPS_PAGE = KeysetQuery(
    columns=(*APP_BASE_COLUMNS, APPS.c.trigger_conditions),
    from_=APP_BASE_FROM,
    created_at=APPS.c.created_at,
    id_=APPS.c.id,
)
# A semi-join: one installation per app and organization, so no duplicates either way.
INSTALLED_APPS_CONDITIONS = (
    APPS.c.id.in_(
        select(_installations.c.app_id).where(
            _installations.c.organization_id == bindparam("organization_id")
        )
    ),
)

# --- the other catalogue reads, compiled the same way (a GET reads on its own connection) ------

# One app of a list, by id: the list's columns, FROM and conditions, so the same view function.
_APP_ID = APPS.c.id == bindparam("app_id")


def _one_of(query: KeysetQuery, conditions: Sequence[ColumnElement[bool]]) -> CompiledStatement:
    return CompiledStatement(select(*query.columns).select_from(query.from_).where(*conditions, _APP_ID))


PUBLIC_APP = _one_of(PUBLIC_APPS_PAGE, PUBLIC_APPS_CONDITIONS)
INSTALLED_APP = _one_of(INSTALLED_APPS_PAGE, INSTALLED_APPS_CONDITIONS)

# The public view's columns (a partner app is viewed as a public one), in a query of its own (each
# caches its compiled pages). The organization is a bound parameter, spelled as a known
# organization's semi-join on its partners (catalog.visibility).
PARTNER_APPS_PAGE = KeysetQuery(
    columns=APP_BASE_COLUMNS, from_=APP_BASE_FROM, created_at=APPS.c.created_at, id_=APPS.c.id
)
PARTNER_APPS_CONDITIONS = (is_partner_app_of(bindparam("organization_id")),)
PARTNER_APP = _one_of(PARTNER_APPS_PAGE, PARTNER_APPS_CONDITIONS)

_shares = AppShare.__table__
_partner = Organization.__table__.alias("partner")
APP_SHARES_PAGE = KeysetQuery(
    columns=(
        _shares.c.id,
        _shares.c.app_id,
        _shares.c.organization_id,
        _partner.c.name.label("organization_name"),
        _shares.c.created_at,
    ),
    from_=_shares.join(_partner, _partner.c.id == _shares.c.organization_id),
    created_at=_shares.c.created_at,
    id_=_shares.c.id,
)
APP_SHARES_CONDITIONS = (_shares.c.app_id == bindparam("app_id"),)
APP_SHARE = CompiledStatement(
    select(*APP_SHARES_PAGE.columns)
    .select_from(APP_SHARES_PAGE.from_)
    .where(*APP_SHARES_CONDITIONS, _shares.c.id == bindparam("share_id"))
)
