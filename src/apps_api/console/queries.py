"""The few reads only the console needs; every list is one page query (no query per row).

Everything else the console shows comes from the API's own repositories and compiled pages.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select

from apps_api.apps.repository import OWNED_APPS_CONDITIONS, OWNED_APPS_PAGE
from apps_api.catalog.repository import APPS
from apps_api.kit.driver import SessionStatement
from apps_api.kit.pagination import KeysetQuery
from apps_api.models import ApiToken, Organization, Partnership, Webhook, WebhookLogEntry
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
APP_APPROVED = SessionStatement(select(APPS.c.is_approved).where(APPS.c.id == bindparam("app_id")))

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
