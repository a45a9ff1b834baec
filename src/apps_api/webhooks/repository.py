"""Queries for webhooks and log entries, always within one owned app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from apps_api.kit.pagination import KeysetQuery
from apps_api.models import App, Webhook, WebhookLogEntry


def webhook_options() -> Sequence[Any]:
    """Eager loads for the webhook view's embedded objects."""
    return (
        joinedload(Webhook.organization),
        joinedload(Webhook.app).joinedload(App.owned_by_organization),
        joinedload(Webhook.app).joinedload(App.icon_asset),
        joinedload(Webhook.created_by_user),
        joinedload(Webhook.updated_by_user),
        selectinload(Webhook.channel_subscriptions),
    )


def webhooks_of(*, app_id: uuid.UUID) -> Select[Any]:
    return select(Webhook).where(Webhook.app_id == app_id)


async def get_webhook(*, session: AsyncSession, app_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook | None:
    """One webhook of the app, with its embedded objects."""
    statement = select(Webhook).where(Webhook.app_id == app_id, Webhook.id == webhook_id)
    webhook: Webhook | None = (
        (await session.execute(statement.options(*webhook_options()))).unique().scalar_one_or_none()
    )
    return webhook


async def get_log_entry(
    *, session: AsyncSession, app_id: uuid.UUID, entry_id: uuid.UUID
) -> WebhookLogEntry | None:
    statement = select(WebhookLogEntry).where(
        WebhookLogEntry.app_id == app_id, WebhookLogEntry.id == entry_id
    )
    entry: WebhookLogEntry | None = (await session.execute(statement)).scalar_one_or_none()
    return entry


# --- log entries as a compiled list (rows straight to schemas.log_entry_json) -------------------

_entries = WebhookLogEntry.__table__

LOG_ENTRIES_PAGE = KeysetQuery(
    # The view's fields in the view's order (schemas.log_entry_json copies the row). The headers
    # come as JSON text, decoded by orjson in the view: the engine's JSONB codec is json.loads,
    # ~7 % of a page's CPU; orjson is exact for an object of strings (it is not for big integers,
    # so the codec stays json.loads for everything else).
    columns=tuple(
        _entries.c.response_headers.cast(Text).label(name) if name == "response_headers" else _entries.c[name]
        for name in (
            "id",
            "created_at",
            "app_id",
            "organization_id",
            "webhook_id",
            "endpoint_url",
            "action",
            "resource_id",
            "channel",
            "status",
            "retry_index",
            "reason",
            "response_status_code",
            "response_body",
            "response_headers",
            "duration",
            "completed_at",
        )
    ),
    from_=_entries,
    created_at=_entries.c.created_at,
    id_=_entries.c.id,
)


@cache
def log_entry_conditions(
    *, webhook_id: bool, status: bool, created_at_gte: bool, created_at_lte: bool
) -> tuple[ColumnElement[bool], ...]:
    """The app's entries and the filters given (as flags: the values are bound parameters)."""
    conditions = [_entries.c.app_id == bindparam("app_id")]
    if webhook_id:
        conditions.append(_entries.c.webhook_id == bindparam("webhook_id"))
    if status:
        conditions.append(_entries.c.status == bindparam("status"))
    if created_at_gte:
        conditions.append(_entries.c.created_at >= bindparam("created_at_gte"))
    if created_at_lte:
        conditions.append(_entries.c.created_at <= bindparam("created_at_lte"))
    return tuple(conditions)
