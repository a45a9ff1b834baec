"""The queries of an organization's users, compiled once (a GET reads on its own connection)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam

from apps_api.kit.pagination import KeysetQuery
from apps_api.kit.schemas import user_embed_json
from apps_api.models import User

_USERS = User.__table__
# What `UserEmbed` shows, named as `kit.schemas.user_embed_json()` reads a row, and the keyset.
_NAMES = ("id", "first_name", "last_name", "alias", "organization_id", "is_bot", "avatar_url", "created_at")
ORGANIZATION_USERS_PAGE = KeysetQuery(
    columns=tuple(_USERS.c[name] for name in _NAMES),
    from_=_USERS,
    created_at=_USERS.c.created_at,
    id_=_USERS.c.id,
)
# The organization's live users (deleted ones are gone for every reader).
ORGANIZATION_USERS_CONDITIONS = (
    _USERS.c.organization_id == bindparam("organization_id"),
    _USERS.c.deleted_at.is_(None),
)


def user_json(row: Any) -> dict[str, Any]:
    """`UserEmbed` of a row of `ORGANIZATION_USERS_PAGE`."""
    view = user_embed_json(row, "")
    assert view is not None  # the page's rows are users: their id is never NULL
    return view
