"""Queries for webhooks and log entries, always within one owned app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

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


def log_entries_of(
    *,
    app_id: uuid.UUID,
    webhook_id: uuid.UUID | None = None,
    status: str | None = None,
    created_at_gte: datetime | None = None,
    created_at_lte: datetime | None = None,
) -> Select[Any]:
    statement = select(WebhookLogEntry).where(WebhookLogEntry.app_id == app_id)
    if webhook_id is not None:
        statement = statement.where(WebhookLogEntry.webhook_id == webhook_id)
    if status is not None:
        statement = statement.where(WebhookLogEntry.status == status)
    if created_at_gte is not None:
        statement = statement.where(WebhookLogEntry.created_at >= created_at_gte)
    if created_at_lte is not None:
        statement = statement.where(WebhookLogEntry.created_at <= created_at_lte)
    return statement


async def get_log_entry(
    *, session: AsyncSession, app_id: uuid.UUID, entry_id: uuid.UUID
) -> WebhookLogEntry | None:
    statement = select(WebhookLogEntry).where(
        WebhookLogEntry.app_id == app_id, WebhookLogEntry.id == entry_id
    )
    entry: WebhookLogEntry | None = (await session.execute(statement)).scalar_one_or_none()
    return entry
