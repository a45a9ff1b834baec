"""Queries for webhooks and log entries, always within one owned app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, bindparam, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload, with_expression

from apps_api.catalog.repository import (
    APP_BASE_FROM,
    APPS,
    CREATED_BY,
    UPDATED_BY,
    USER_COLUMNS,
    app_base_columns,
)
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import App, Organization, Webhook, WebhookChannelSubscription, WebhookLogEntry

STATS_WINDOW = "24 hours"


def delivery_stats(webhook_id: Any) -> ColumnElement[Any]:
    """The webhook's attempts of the last 24 h as one JSON object (`schemas.DeliveryStats`).

    An index-only range scan of `ix_webhook_log_entries_webhook_created` (webhook_id, created_at
    INCLUDE status, duration) over at most two daily partitions: it reads this webhook's recent
    entries only, never the log.
    """
    # Literals, not parameters: the list view is a compiled statement bound by name (kit/driver.py).
    entries = WebhookLogEntry.__table__
    durations = entries.c.duration
    fields = {
        "successful": func.count().filter(entries.c.status == literal_column("'successful'")),
        "failed": func.count().filter(entries.c.status == literal_column("'failed'")),
        "pending": func.count().filter(
            entries.c.status.in_([literal_column("'pending'"), literal_column("'started'")])
        ),
        "p50_duration_ms": func.percentile_disc(literal_column("0.5")).within_group(durations),
        "p95_duration_ms": func.percentile_disc(literal_column("0.95")).within_group(durations),
    }
    return (
        select(
            func.json_build_object(
                *(item for name, value in fields.items() for item in (literal_column(f"'{name}'"), value))
            )
        )
        .where(
            entries.c.webhook_id == webhook_id,
            entries.c.created_at >= func.now() - text(f"interval '{STATS_WINDOW}'"),
        )
        .scalar_subquery()
    )


def webhook_options() -> Sequence[Any]:
    """Eager loads for the webhook view's embedded objects and its delivery stats."""
    return (
        with_expression(Webhook.delivery_stats, delivery_stats(Webhook.id)),
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


# --- webhooks as a compiled list (rows straight to schemas.webhook_json) -------------------------

_webhooks = Webhook.__table__
_subscriptions = WebhookChannelSubscription.__table__
_webhook_organization = Organization.__table__.alias("webhook_organization")
HEALTH_COLUMNS = ("is_disabled", "disabled_at", "disabled_reason", "last_success_at", "last_failure_at")
_SUBSCRIPTION_FIELDS = (
    "channel_pattern",
    "is_additions_subscribed",
    "is_changes_subscribed",
    "is_removals_subscribed",
)
# The webhook's subscriptions as one JSON array (text, decoded by orjson in the view), in the
# order they were given: one round trip for the page, not one more per webhook.
_SUBSCRIPTIONS_JSON = (
    select(
        func.coalesce(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_object(
                        *(
                            item
                            for name in _SUBSCRIPTION_FIELDS
                            for item in (literal_column(f"'{name}'"), _subscriptions.c[name])
                        )
                    ),
                    _subscriptions.c.position,
                )
            ),
            literal_column("'[]'::json"),
        ).cast(Text)
    )
    .where(_subscriptions.c.webhook_id == _webhooks.c.id)
    .scalar_subquery()
    .label("channel_subscriptions")
)

WEBHOOKS_PAGE = KeysetQuery(
    columns=(
        *(
            _webhooks.c[name]
            for name in ("id", "organization_id", "app_id", "endpoint_url", "created_at", "updated_at")
        ),
        *(_webhooks.c[name] for name in HEALTH_COLUMNS),
        delivery_stats(_webhooks.c.id).cast(Text).label("delivery_stats"),
        _webhooks.c.created_by_user_id,
        _webhooks.c.updated_by_user_id,
        _webhook_organization.c.name.label("organization_name"),
        *app_base_columns("app_"),
        _SUBSCRIPTIONS_JSON,
        *(CREATED_BY.c[name].label(f"created_by_{name}") for name in USER_COLUMNS),
        *(UPDATED_BY.c[name].label(f"updated_by_{name}") for name in USER_COLUMNS),
    ),
    from_=_webhooks.join(_webhook_organization, _webhook_organization.c.id == _webhooks.c.organization_id)
    .join(APP_BASE_FROM, APPS.c.id == _webhooks.c.app_id)
    .outerjoin(CREATED_BY, CREATED_BY.c.id == _webhooks.c.created_by_user_id)
    .outerjoin(UPDATED_BY, UPDATED_BY.c.id == _webhooks.c.updated_by_user_id),
    created_at=_webhooks.c.created_at,
    id_=_webhooks.c.id,
)
WEBHOOKS_CONDITIONS = (_webhooks.c.app_id == bindparam("app_id"),)


# --- log entries as a compiled list (rows straight to schemas.log_entry_json) -------------------

_entries = WebhookLogEntry.__table__

LOG_ENTRIES_PAGE = KeysetQuery(
    # The view's fields in the view's order (schemas.log_entry_json copies the row). The headers
    # come as JSON text, decoded by orjson in the view: the engine's JSONB codec is json.loads,
    # slower for a page of headers; orjson is exact for an object of strings (not for big integers,
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
