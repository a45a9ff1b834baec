"""The operator API's reads: Core statements compiled once, run on a GET's `ReadConnection`.

The writes keep the ORM session and `platform.service`; the GETs read rows (asyncpg records)
here, and `schemas.*.of_row` makes the same views of them as `of` does of the ORM objects.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, bindparam, select

from apps_api.catalog.visibility import partner_ids_of
from apps_api.kit.driver import CompiledStatement, ReadConnection
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import ApiToken, Asset, Organization, User
from apps_api.platform.service import UnknownObject, parse_key

_ORGANIZATIONS = cast(Table, Organization.__table__)
_USERS = cast(Table, User.__table__)
_TOKENS = cast(Table, ApiToken.__table__)
_ASSETS = cast(Table, Asset.__table__)

# What `schemas.Organization.of_row` reads.
_ORGANIZATION_COLUMNS = tuple(
    _ORGANIZATIONS.c[name]
    for name in (
        "id",
        "external_id",
        "name",
        "features",
        "subscription_active",
        "subscription_expires_at",
        "created_at",
        "updated_at",
    )
)
# What `schemas.User.of_row` reads: whether there is a password, never its hash.
_USER_COLUMNS = (
    *(
        _USERS.c[name]
        for name in (
            "id",
            "external_id",
            "organization_id",
            "email",
            "first_name",
            "last_name",
            "permissions",
            "is_bot",
            "created_at",
            "updated_at",
        )
    ),
    _USERS.c.password_hash.is_not(None).label("has_password"),
)
_TOKEN_COLUMNS = tuple(
    _TOKENS.c[name] for name in ("id", "user_id", "key_prefix", "created_at", "expires_at", "revoked_at")
)
_ASSET_COLUMNS = tuple(
    _ASSETS.c[name]
    for name in (
        "id",
        "url",
        "kind",
        "content_type",
        "size",
        "width",
        "height",
        "organization_id",
        "created_at",
    )
)

ORGANIZATION_BY_ID = CompiledStatement(
    select(*_ORGANIZATION_COLUMNS).where(_ORGANIZATIONS.c.id == bindparam("organization_id"))
)
ORGANIZATION_BY_EXTERNAL_ID = CompiledStatement(
    select(*_ORGANIZATION_COLUMNS).where(_ORGANIZATIONS.c.external_id == bindparam("external_id"))
)
_LIVE_USERS_OF = (_USERS.c.organization_id == bindparam("organization_id"), _USERS.c.deleted_at.is_(None))
USER_BY_ID = CompiledStatement(
    select(*_USER_COLUMNS).where(*_LIVE_USERS_OF, _USERS.c.id == bindparam("user_id"))
)
USER_BY_EXTERNAL_ID = CompiledStatement(
    select(*_USER_COLUMNS).where(*_LIVE_USERS_OF, _USERS.c.external_id == bindparam("external_id"))
)


def _page(columns: tuple[Any, ...], table: Table) -> KeysetQuery:
    return KeysetQuery(columns=columns, from_=table, created_at=table.c.created_at, id_=table.c.id)


# The lists, each with its conditions (bound parameters named as the routes pass them).
ORGANIZATIONS_PAGE = _page(_ORGANIZATION_COLUMNS, _ORGANIZATIONS)
ORGANIZATIONS_CONDITIONS = ()
PARTNERS_PAGE = _page(_ORGANIZATION_COLUMNS, _ORGANIZATIONS)
# partner_ids_of takes a value; a bound parameter is one the statement is compiled with.
PARTNERS_CONDITIONS = (
    _ORGANIZATIONS.c.id.in_(partner_ids_of(cast(uuid.UUID, bindparam("organization_id")))),
)
USERS_PAGE = _page(_USER_COLUMNS, _USERS)
USERS_CONDITIONS = _LIVE_USERS_OF
TOKENS_PAGE = _page(_TOKEN_COLUMNS, _TOKENS)
TOKENS_CONDITIONS = (_TOKENS.c.user_id == bindparam("user_id"), _TOKENS.c.revoked_at.is_(None))
ASSETS_PAGE = _page(_ASSET_COLUMNS, _ASSETS)
ASSETS_CONDITIONS = (_ASSETS.c.organization_id == bindparam("organization_id"),)


async def organization_by_key(*, db: ReadConnection, key: str) -> asyncpg.Record:
    """`platform.organization_by_key` on a read connection: the organization's row, same refusals."""
    organization_id, external_id = parse_key(key)
    if organization_id is not None:
        rows = await ORGANIZATION_BY_ID.fetch(db, organization_id=organization_id)
        if not rows:
            raise UnknownObject(f"unknown organization: {organization_id}")
        return rows[0]
    rows = await ORGANIZATION_BY_EXTERNAL_ID.fetch(db, external_id=external_id)
    if not rows:
        raise UnknownObject(f"unknown organization: {key}")
    return rows[0]


async def user_by_key(*, db: ReadConnection, organization_id: uuid.UUID, key: str) -> asyncpg.Record:
    """`platform.user_by_key` on a read connection: the organization's live user's row, same refusals."""
    user_id, external_id = parse_key(key)
    if user_id is not None:
        rows = await USER_BY_ID.fetch(db, organization_id=organization_id, user_id=user_id)
    else:
        rows = await USER_BY_EXTERNAL_ID.fetch(db, organization_id=organization_id, external_id=external_id)
    if not rows:
        raise UnknownObject(f"unknown user: {key}")
    return rows[0]
