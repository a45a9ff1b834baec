"""The few reads only the console needs (its pages hold no query); every list is one page query
(no query per row).

Everything else the console shows comes from the API's own repositories and compiled pages.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.app_user_tokens.service import tokens_of
from apps_api.apps.repository import OWNED_APPS_CONDITIONS, OWNED_APPS_PAGE
from apps_api.catalog.repository import APPS
from apps_api.kit.driver import CompiledStatement
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import (
    ApiToken,
    AppInstallation,
    Organization,
    OutboundDelivery,
    Partnership,
    Webhook,
    WebhookLogEntry,
)
from apps_api.models.base import utcnow
from apps_api.webhooks.repository import WEBHOOKS_PAGE

# The API's owned apps page plus the approval flag the list shows next to "public".
OWNED_APPS_LIST = KeysetQuery(
    columns=(*OWNED_APPS_PAGE.columns, APPS.c.is_approved),
    from_=OWNED_APPS_PAGE.from_,
    created_at=APPS.c.created_at,
    id_=APPS.c.id,
)
OWNED_APPS_LIST_CONDITIONS = OWNED_APPS_CONDITIONS
# The approval flag of one owned app (the API's owned view does not show it).
APP_APPROVED = CompiledStatement(select(APPS.c.is_approved).where(APPS.c.id == bindparam("app_id")))

# The API's webhooks page plus the failure streak, so a failing webhook is not shown "Enabled".
_webhooks = Webhook.__table__
WEBHOOKS_LIST = KeysetQuery(
    columns=(*WEBHOOKS_PAGE.columns, _webhooks.c.failing_since, _webhooks.c.failures_in_streak),
    from_=WEBHOOKS_PAGE.from_,
    created_at=_webhooks.c.created_at,
    id_=_webhooks.c.id,
)

_entries = WebhookLogEntry.__table__
_hour = func.date_trunc("hour", _entries.c.completed_at)
# Finished attempts of one app in the last day, per hour: one aggregate over the app's index.
HOURLY_ATTEMPTS = (
    select(
        _hour.label("hour"),
        func.count().filter(_entries.c.status == "successful").label("successful"),
        func.count().filter(_entries.c.status == "failed").label("failed"),
        func.percentile_cont(0.95).within_group(_entries.c.duration).label("p95"),
    )
    .where(
        _entries.c.app_id == bindparam("app_id"),
        # created_at narrows the index range; completed_at is what the hours count.
        _entries.c.created_at >= bindparam("since"),
        _entries.c.completed_at >= bindparam("since"),
        _entries.c.status.in_(("successful", "failed")),
    )
    .group_by(_hour)
)


async def hourly_attempts(
    session: Any, *, app_id: uuid.UUID, now: datetime | None = None
) -> dict[datetime, Any]:
    """hour (UTC, truncated) -> (successful, failed, p95 ms) for the 24 hours before `now`."""
    now = now or utcnow()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    rows = (await session.execute(HOURLY_ATTEMPTS, {"app_id": app_id, "since": since})).mappings().all()
    return {row["hour"]: row for row in rows}


async def token_counts(session: Any, installation_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many live app-user tokens each installation of a page has: one query for the page."""
    if not installation_ids:
        return {}
    rows = await session.execute(
        select(ApiToken.app_installation_id, func.count())
        .where(ApiToken.app_installation_id.in_(installation_ids), ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.app_installation_id)
    )
    return {installation_id: count for installation_id, count in rows.all()}


async def partner_organizations(session: Any, *, organization_id: uuid.UUID) -> list[Any]:
    """The organization's partners (id, name), for the share form's choices."""
    partnerships = Partnership.__table__
    organizations = Organization.__table__
    other = func.coalesce(
        func.nullif(partnerships.c.organization_a_id, organization_id), partnerships.c.organization_b_id
    )
    statement = (
        select(organizations.c.id, organizations.c.name)
        .select_from(partnerships.join(organizations, organizations.c.id == other))
        .where(
            (partnerships.c.organization_a_id == organization_id)
            | (partnerships.c.organization_b_id == organization_id)
        )
        .order_by(organizations.c.name)
        .limit(500)
    )
    return list((await session.execute(statement)).all())


async def webhook_choices(session: AsyncSession, *, app_id: uuid.UUID) -> list[Any]:
    """The app's webhooks (id, URL), newest first, for the deliveries filter."""
    statement = (
        select(Webhook.id, Webhook.endpoint_url)
        .where(Webhook.app_id == app_id)
        .order_by(Webhook.created_at.desc())
        .limit(100)
    )
    return list((await session.execute(statement)).all())


async def delivery(session: AsyncSession, *, delivery_id: uuid.UUID) -> OutboundDelivery | None:
    return await session.get(OutboundDelivery, delivery_id)


async def delivery_attempts(
    session: AsyncSession, *, app_id: uuid.UUID, delivery_id: uuid.UUID, since: datetime
) -> list[WebhookLogEntry]:
    """Every attempt of a delivery within the log's retention, oldest first."""
    statement = (
        select(WebhookLogEntry)
        .where(
            WebhookLogEntry.delivery_id == delivery_id,
            WebhookLogEntry.app_id == app_id,
            WebhookLogEntry.created_at >= since,
        )
        .order_by(WebhookLogEntry.created_at, WebhookLogEntry.id)
        .limit(100)
    )
    return list((await session.execute(statement)).scalars())


async def installation_tokens(session: AsyncSession, *, installation: AppInstallation) -> list[ApiToken]:
    """The app-user tokens of an installation, newest first (the API's `tokens_of`)."""
    statement = (
        tokens_of(installation=installation)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        .limit(100)
    )
    return list((await session.execute(statement)).scalars())


async def installed_app_ids(
    session: AsyncSession, *, organization_id: uuid.UUID, app_ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these apps the organization has installed."""
    if not app_ids:
        return set()
    statement = select(AppInstallation.app_id).where(
        AppInstallation.organization_id == organization_id, AppInstallation.app_id.in_(app_ids)
    )
    return set((await session.execute(statement)).scalars())
