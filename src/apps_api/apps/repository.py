"""Queries for apps; each turns "what may this caller see" into a WHERE clause."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from apps_api.models import App


def app_view_options() -> Sequence[Any]:
    """Eager loads for the embedded objects every app view shows."""
    return (
        joinedload(App.owned_by_organization),
        joinedload(App.icon_asset),
    )


def public_apps() -> Select[App]:
    return select(App).where(App.is_available_to_anyone.is_(True), App.is_approved.is_(True))


async def get_public_app(*, session: AsyncSession, app_id: uuid.UUID) -> App | None:
    """One approved public app, with its embedded objects."""
    statement = public_apps().where(App.id == app_id).options(*app_view_options())
    return (await session.execute(statement)).scalar_one_or_none()
