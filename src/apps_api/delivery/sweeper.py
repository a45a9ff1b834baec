"""The sweeper (arq cron every few seconds): finds in PostgreSQL whatever Redis and notifications lost.

Undispatched events older than the grace get a dispatch job, endpoints with due attempts or
lapsed leases a delivery job each; it also disables webhooks that only fail, ends the waiting
deliveries of disabled and deleted ones, and moves those whose webhook's URL changed.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps_api.delivery import follow, health
from apps_api.delivery.outbox import enqueue_deliver_job, enqueue_endpoint_job
from apps_api.delivery.states import DeliveryStatus
from apps_api.kit.queue import enqueue
from apps_api.models import Event, OutboundDelivery
from apps_api.models.base import utcnow
from apps_api.settings import Settings

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 1000
# Events left undispatched this long are the sweeper's (their job was lost or never enqueued).
UNDISPATCHED_GRACE = timedelta(seconds=2)


async def sweep(
    *, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis | None
) -> dict[str, int]:
    """Re-enqueue what Redis may have lost: undispatched events, due deliveries, lapsed leases."""
    now = utcnow()
    await _disable_failing(settings, sessionmaker, now)
    await _follow_webhooks(sessionmaker, redis, now)
    async with sessionmaker() as session:
        undispatched = await session.scalar(
            select(Event.id)
            .where(Event.dispatched_at.is_(None), Event.created_at < now - UNDISPATCHED_GRACE)
            .limit(1)
        )
        due = (
            await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.attempt_count, OutboundDelivery.endpoint_host)
                .where(
                    OutboundDelivery.status == DeliveryStatus.PENDING, OutboundDelivery.next_attempt_at <= now
                )
                .order_by(OutboundDelivery.next_attempt_at)
                .limit(SWEEP_LIMIT)
            )
        ).all()
        stale = (
            await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.attempt_count, OutboundDelivery.endpoint_host)
                .where(OutboundDelivery.status == DeliveryStatus.STARTED, OutboundDelivery.locked_until < now)
                .limit(SWEEP_LIMIT)
            )
        ).all()
    if undispatched is not None:
        job_id = f"dispatch-sweep:{settings.queue_name}:{int(time.time())}"
        await enqueue(redis, "dispatch_events", _job_id=job_id)
    # Lapsed leases first: each frees a slot of its endpoint.
    await _enqueue_per_endpoint(redis, [(row[0], row[1], row[2]) for row in [*stale, *due]])
    return {"undispatched": int(undispatched is not None), "due": len(due), "stale": len(stale)}


async def _disable_failing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], now: datetime
) -> None:
    """Disable the webhooks that only fail, and end the waiting deliveries of disabled or deleted ones."""
    async with sessionmaker() as session, session.begin():
        disabled = await health.disable_failing_webhooks(
            session=session,
            now=now,
            after_days=settings.webhook_disable_after_days,
            min_failures=settings.webhook_disable_min_failures,
        )
        await health.end_deliveries_of_disabled(session=session, now=now, limit=SWEEP_LIMIT)
    if disabled:
        logger.warning("disabled %d webhooks whose every attempt failed", len(disabled))


async def _follow_webhooks(
    sessionmaker: async_sessionmaker[AsyncSession], redis: ArqRedis | None, now: datetime
) -> None:
    """Move waiting deliveries whose webhook's URL changed under them, then start their new endpoints."""
    async with sessionmaker() as session, session.begin():
        hosts = await follow.move_stale_deliveries(session=session, now=now, limit=SWEEP_LIMIT)
    for host in hosts:
        await enqueue_endpoint_job(redis, host, reason="moved")


async def _enqueue_per_endpoint(redis: ArqRedis | None, due: list[tuple[uuid.UUID, int, str]]) -> None:
    """Enqueue one delivery job per endpoint: the job's pump takes every due attempt of it."""
    seen: set[str] = set()
    for delivery_id, attempt_count, host in due:
        if host in seen:
            continue
        seen.add(host)
        await enqueue_deliver_job(redis, delivery_id, attempt_count)
