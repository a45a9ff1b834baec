"""Queries for webhooks and log entries, always within one owned app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, Text, bindparam, case, func, literal_column, select, text
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
    owned_by_caller,
)
from apps_api.kit.driver import CompiledStatement
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import (
    App,
    Organization,
    OutboundDelivery,
    Webhook,
    WebhookChannelSubscription,
    WebhookLogEntry,
)
from apps_api.models.base import utcnow

STATS_WINDOW = "24 hours"
# Log entry columns that come as JSON text, decoded by orjson in the view (`LOG_ENTRIES_PAGE`).
JSON_COLUMNS = ("response_headers", "request_headers")


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


def kept_since(*, retention_days: int, now: datetime | None = None) -> datetime:
    """The oldest `created_at` a read of the log returns.

    The purge drops whole days (delivery/partitions.py) when it runs: entries past the retention
    may still be stored, and no read shows them.
    """
    return (now or utcnow()) - timedelta(days=retention_days)


_entries = cast(Table, WebhookLogEntry.__table__)
_deliveries = cast(Table, OutboundDelivery.__table__)


def next_attempt_at(entries: Table) -> ColumnElement[Any]:
    """A pending attempt's due time, from its delivery (one primary-key lookup); else null."""
    due = (
        select(_deliveries.c.next_attempt_at)
        .where(
            _deliveries.c.id == entries.c.delivery_id,
            _deliveries.c.status == literal_column("'pending'"),
            _deliveries.c.current_log_entry_id == entries.c.id,
        )
        .scalar_subquery()
    )
    return case((entries.c.status == literal_column("'pending'"), due))


async def get_log_entry(
    *, session: AsyncSession, app_id: uuid.UUID, entry_id: uuid.UUID, since: datetime
) -> WebhookLogEntry | None:
    """One log entry of the app within the retention (`kept_since()`), with its next attempt time."""
    statement = (
        select(WebhookLogEntry)
        .where(
            WebhookLogEntry.app_id == app_id,
            WebhookLogEntry.id == entry_id,
            WebhookLogEntry.created_at >= since,
        )
        .options(with_expression(WebhookLogEntry.next_attempt_at, next_attempt_at(_entries)))
        # An entry this session just wrote (a redelivery's) gets its next attempt time too.
        .execution_options(populate_existing=True)
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
# The API's list: the app's webhooks if the caller's organization owns it (no probe before it).
OWNED_WEBHOOKS_CONDITIONS = (*WEBHOOKS_CONDITIONS, owned_by_caller())
# One webhook of the app, as a row of the list (the same view, schemas.webhook_json): a GET's.
WEBHOOK = CompiledStatement(
    select(*WEBHOOKS_PAGE.columns)
    .select_from(WEBHOOKS_PAGE.from_)
    .where(*WEBHOOKS_CONDITIONS, _webhooks.c.id == bindparam("webhook_id"))
)


# --- log entries as a compiled list (rows straight to schemas.log_entry_json) -------------------

LOG_ENTRIES_PAGE = KeysetQuery(
    # The view's fields in the view's order (schemas.log_entry_json copies the row). The headers
    # come as JSON text, decoded by orjson in the view: the engine's JSONB codec is json.loads,
    # slower for a page of headers; orjson is exact for an object of strings (not for big integers,
    # so the codec stays json.loads for everything else).
    columns=tuple(
        next_attempt_at(_entries).label(name)
        if name == "next_attempt_at"
        else _entries.c[name].cast(Text).label(name)
        if name in JSON_COLUMNS
        else _entries.c[name]
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
            "started_at",
            "completed_at",
            "next_attempt_at",
            "request_headers",
            "request_body",
        )
    ),
    from_=_entries,
    created_at=_entries.c.created_at,
    id_=_entries.c.id,
)


@cache
def log_entry_conditions(
    *,
    webhook_id: bool,
    status: bool,
    created_at_gte: bool,
    created_at_lte: bool,
    message_id: bool = False,
    resource_id: bool = False,
    channel: bool = False,
    action: bool = False,
    owned: bool = False,
) -> tuple[ColumnElement[bool], ...]:
    """The app's entries within the retention (`kept_since`) and the filters given (as flags: the
    values are bound parameters); with `owned`, only if the caller's organization owns the app."""
    conditions = [
        _entries.c.app_id == bindparam("app_id"),
        _entries.c.created_at >= bindparam("kept_since"),
    ]
    if owned:
        conditions.append(owned_by_caller())
    if webhook_id:
        conditions.append(_entries.c.webhook_id == bindparam("webhook_id"))
    if status:
        conditions.append(_entries.c.status == bindparam("status"))
    if message_id:
        # Through the deliveries' `message_id` index: the attempts of one `webhook-id`.
        conditions.append(
            _entries.c.delivery_id.in_(
                select(_deliveries.c.id).where(
                    _deliveries.c.message_id == bindparam("message_id"),
                    _deliveries.c.app_id == bindparam("app_id"),
                )
            )
        )
    for name, wanted in (("resource_id", resource_id), ("channel", channel), ("action", action)):
        if wanted:
            conditions.append(_entries.c[name] == bindparam(name))
    if created_at_gte:
        conditions.append(_entries.c.created_at >= bindparam("created_at_gte"))
    if created_at_lte:
        conditions.append(_entries.c.created_at <= bindparam("created_at_lte"))
    return tuple(conditions)


# One entry of the app within the retention, as a row of the list (schemas.log_entry_json): a GET's.
LOG_ENTRY = CompiledStatement(
    select(*LOG_ENTRIES_PAGE.columns)
    .select_from(_entries)
    .where(
        _entries.c.app_id == bindparam("app_id"),
        _entries.c.id == bindparam("entry_id"),
        _entries.c.created_at >= bindparam("kept_since"),
    )
)
