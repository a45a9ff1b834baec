"""Deliveries follow their webhook: every attempt goes to the webhook's URL as it is when it starts.

A delivery row keeps a copy of its URL and of its endpoint (`endpoint_host`, the unit of the
pumps and of the per-endpoint bound), so the lease of an endpoint's attempts stays one index
walk. A copy can fall behind the webhook in three ways, each closed here or in the engine:
- the owner changes the URL: `move_deliveries()` moves the webhook's waiting deliveries (and
  their pending log entries) in the change's own transaction;
- an attempt in flight during the change comes back pending with the old copy, and an event
  dispatched from a matcher cache up to a second old gets it: the lease never sends an attempt
  whose copy differs from its webhook's URL (lease.py, `LEASE_STEPS`), and the sweeper moves
  such rows (`move_stale_deliveries()`);
- redeliver and recover take the webhook's URL when they put a delivery back to pending.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery.health import WAITING
from apps_api.delivery.outbox import endpoint_host

# The webhook's waiting deliveries (pending, or started with a lapsed lease) with another URL
# take `:url`; pending log entries show the URL their attempt will use. A started entry keeps
# the URL its interrupted attempt used: the next lease starts a new entry (lease.py).
# SKIP LOCKED: the caller holds the webhook's row, and the statement that records outcomes locks
# deliveries, then webhooks; a row a lease holds is in flight, and if it comes back pending with
# the old URL the lease refuses it and the sweeper moves it.
_MOVE = """
WITH moved AS (
    UPDATE outbound_deliveries AS d
    SET endpoint_url = :url, endpoint_host = :host, updated_at = :now
    WHERE d.id IN (
        SELECT id FROM outbound_deliveries
        WHERE webhook_id = :webhook_id AND endpoint_url <> :url
          AND (status = 'pending' OR (status = 'started' AND locked_until < :now))
        FOR UPDATE SKIP LOCKED
    )
    RETURNING d.current_log_entry_id
), entries AS (
    UPDATE webhook_log_entries AS e
    SET endpoint_url = :url, updated_at = :now
    FROM moved
    WHERE e.id = moved.current_log_entry_id AND e.status = 'pending'
)
SELECT count(*) FROM moved
"""

# Webhooks with a waiting delivery whose URL is out of date, among the rows the sweeper looks at.
_STALE = f"""
SELECT DISTINCT waiting.webhook_id FROM ({WAITING}) AS waiting
WHERE waiting.endpoint_url <> (SELECT w.endpoint_url FROM webhooks AS w WHERE w.id = waiting.webhook_id)
"""  # noqa: S608 - fixed text


async def move_deliveries(
    *, session: AsyncSession, webhook_id: uuid.UUID, endpoint_url: str, now: datetime
) -> int:
    """Move the webhook's waiting deliveries to `endpoint_url` (the caller holds the webhook's row)."""
    result = await session.execute(
        text(_MOVE),
        {"webhook_id": webhook_id, "url": endpoint_url, "host": endpoint_host(endpoint_url), "now": now},
    )
    return int(result.scalar_one())


async def move_stale_deliveries(*, session: AsyncSession, now: datetime, limit: int) -> set[str]:
    """The sweeper's part: move waiting deliveries whose URL is out of date; returns their new endpoints."""
    stale = (await session.execute(text(_STALE), {"now": now, "limit": limit})).scalars().all()
    hosts = set()
    for webhook_id in stale:
        # Under the webhook's row lock: a change of its URL in flight waits, or has committed.
        url = await session.scalar(
            text("SELECT endpoint_url FROM webhooks WHERE id = :id FOR SHARE"), {"id": webhook_id}
        )
        if url is not None and await move_deliveries(
            session=session, webhook_id=webhook_id, endpoint_url=url, now=now
        ):
            hosts.add(endpoint_host(url))
    return hosts
