"""Webhook health: automatic disabling of a webhook that only fails, and its stats' window.

The worker maintains each webhook's failure streak (`failing_since`, `failures_in_streak`)
with every batch of outcomes (engine.py, `_RECORD`); the sweeper disables the webhooks whose
streak has lasted long enough, and ends the pending deliveries of every disabled webhook.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.channels import WEBHOOKS
from apps_api.delivery.events import Action, emit
from apps_api.kit.schemas import iso_utc
from apps_api.models import Webhook

# The reason names the webhook's own count of failures (format()'s %s).
_DISABLE = """
UPDATE webhooks
SET is_disabled = true, disabled_at = :now, disabled_reason = format(:reason, failures_in_streak)
WHERE NOT is_disabled AND failing_since <= :cutoff AND failures_in_streak >= :min_failures
RETURNING id
"""
DISABLED_DELIVERY_REASON = "Webhook disabled"


async def emit_webhook_event(
    *,
    session: AsyncSession,
    webhook: Webhook,
    action: Action,
    resource: dict[str, Any],
    actor_user_id: uuid.UUID | None = None,
) -> None:
    """An `added`/`changed`/`removed` event of a webhook on its owner's webhooks channel."""
    await emit(
        session=session,
        organization_id=webhook.organization_id,
        channel=WEBHOOKS.channel(organization_id=webhook.organization_id, app_id=webhook.app_id),
        action=action,
        resource_id=webhook.id,
        resource=resource,
        required_scope=WEBHOOKS.scope,
        actor_user_id=actor_user_id,
    )


def disabled_view(webhook: Webhook) -> dict[str, object]:
    """The attributes a disabling or re-enabling changes, as the `changed` event carries them."""
    return {
        "is_disabled": webhook.is_disabled,
        "disabled_at": None if webhook.disabled_at is None else iso_utc(webhook.disabled_at),
        "disabled_reason": webhook.disabled_reason,
    }


async def disable_failing_webhooks(
    *, session: AsyncSession, now: datetime, after_days: float, min_failures: int
) -> list[uuid.UUID]:
    """Disable webhooks failing since `after_days` ago with `min_failures` failures; emit `changed`."""
    rows = (
        await session.execute(
            text(_DISABLE),
            {
                "now": now,
                "cutoff": now - timedelta(days=after_days),
                "min_failures": min_failures,
                "reason": f"Every attempt failed for {after_days:g} days (%s failed attempts).",
            },
        )
    ).all()
    disabled = [row[0] for row in rows]
    for webhook_id in disabled:
        webhook = await session.get_one(Webhook, webhook_id, populate_existing=True)
        await emit_webhook_event(
            session=session, webhook=webhook, action="changed", resource=disabled_view(webhook)
        )
    return disabled


# The pending deliveries of disabled webhooks end failed, their pending log entries too.
_END_DISABLED = """
WITH ended AS (
    UPDATE outbound_deliveries AS d
    SET status = 'failed', completed_at = :now, updated_at = :now
    WHERE d.status = 'pending'
      AND d.webhook_id IN (SELECT id FROM webhooks WHERE is_disabled)
    RETURNING d.current_log_entry_id
)
UPDATE webhook_log_entries AS e
SET status = 'failed', reason = :reason, completed_at = :now, updated_at = :now
FROM ended
WHERE e.id = ended.current_log_entry_id AND e.status = 'pending'
"""


async def end_deliveries_of_disabled(*, session: AsyncSession, now: datetime) -> None:
    """Fail the pending deliveries of every disabled webhook ("Webhook disabled")."""
    await session.execute(text(_END_DISABLED), {"now": now, "reason": DISABLED_DELIVERY_REASON})
