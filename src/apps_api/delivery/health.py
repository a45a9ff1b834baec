"""Webhook health: automatic disabling of a webhook that only fails, and its stats' window.

The worker maintains each webhook's failure streak (`failing_since`, `failures_in_streak`)
with every batch of outcomes (record.py, `_RECORD`); the sweeper disables the webhooks whose
streak has lasted long enough, and ends the waiting deliveries of every disabled (or deleted) webhook.
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
DELETED_DELIVERY_REASON = "Webhook deleted"


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


# The waiting deliveries (pending, or started with a lapsed lease: their worker died) of the
# webhooks `{webhooks}` selects end failed, their current log entries too, with `:reason`.
# SKIP LOCKED: a row a lease holds is skipped, never waited for. Callers may hold webhook rows
# (a change of the webhook, the sweeper's disabling), and the statement that records outcomes
# locks deliveries, then their webhooks: waiting here could close a deadlock. A skipped attempt
# is in flight; if it comes back pending, the lease refuses it and the sweeper ends it.
_END_WAITING = """
WITH ended AS (
    UPDATE outbound_deliveries AS d
    SET status = 'failed', locked_until = NULL, locked_by = NULL, completed_at = :now, updated_at = :now
    WHERE d.id IN (
        SELECT d.id FROM outbound_deliveries AS d
        WHERE (d.status = 'pending' OR (d.status = 'started' AND d.locked_until < :now))
          AND {webhooks}
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.current_log_entry_id
)
UPDATE webhook_log_entries AS e
SET status = 'failed', reason = :reason, completed_at = :now, updated_at = :now
FROM ended
WHERE e.id = ended.current_log_entry_id AND e.status IN ('pending', 'started')
"""
# The first `:limit` due and the first `:limit` lapsed deliveries: what the sweeper looks at
# anyway. A row the lease refuses (its webhook deleted, or its URL out of date) stays due and so
# comes first; each row's webhook is a primary-key lookup, never a scan of all waiting rows.
WAITING = """
    (SELECT id, kind, webhook_id, endpoint_url FROM outbound_deliveries
     WHERE status = 'pending' AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit)
    UNION ALL
    (SELECT id, kind, webhook_id, endpoint_url FROM outbound_deliveries
     WHERE status = 'started' AND locked_until < :now LIMIT :limit)
"""
_OF_DISABLED = _END_WAITING.format(webhooks="d.webhook_id IN (SELECT id FROM webhooks WHERE is_disabled)")
_OF_DELETED = _END_WAITING.format(
    webhooks=f"""d.id IN (
        SELECT waiting.id FROM ({WAITING}) AS waiting
        WHERE waiting.kind = 'webhook'
          AND (SELECT w.id FROM webhooks AS w WHERE w.id = waiting.webhook_id) IS NULL
    )"""  # noqa: S608 - fixed text
)
_OF_ONE = _END_WAITING.format(webhooks="d.webhook_id = :webhook_id")


async def end_deliveries_of_disabled(*, session: AsyncSession, now: datetime, limit: int) -> None:
    """Fail the waiting deliveries of every disabled webhook ("Webhook disabled"), and of deleted
    ones ("Webhook deleted") among the first `limit` due and lapsed.

    The lease skips them meanwhile (lease.py): an attempt that was in flight when its webhook
    was disabled or deleted, and came back pending, ends here.
    """
    await session.execute(text(_OF_DISABLED), {"now": now, "reason": DISABLED_DELIVERY_REASON})
    await session.execute(text(_OF_DELETED), {"now": now, "reason": DELETED_DELIVERY_REASON, "limit": limit})


async def end_deliveries_of_webhook(
    *, session: AsyncSession, webhook_id: uuid.UUID, reason: str, now: datetime
) -> None:
    """Fail the waiting deliveries of one webhook with `reason`, in the caller's transaction."""
    await session.execute(text(_OF_ONE), {"now": now, "reason": reason, "webhook_id": webhook_id})
