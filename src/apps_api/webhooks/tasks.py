"""arq jobs of the delivery pipeline: dispatcher, deliverer, sweeper and purge.

Redis only makes work happen promptly; PostgreSQL holds all of it. The sweeper finds
whatever Redis lost (a restart without persistence), whatever a killed worker left behind
(lapsed leases) and events whose dispatch job was never enqueued (an API process that died
right after its commit), so nothing is lost.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from arq import cron
from arq.worker import func
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from apps_api.kit.queue import enqueue
from apps_api.models import Event, OutboundDelivery, WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.outbound.client import guarded_client
from apps_api.outbound.guard import parse_networks
from apps_api.settings import Settings, get_settings
from apps_api.webhooks.delivery import SHORT_WAIT_SECONDS, Deliverer, attempt, lease
from apps_api.webhooks.dispatch import SubscriptionIndex, dispatch_batch
from apps_api.webhooks.outbox import DELIVER_JOB, deliver_job_id

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 1000
PURGE_BATCH = 5000
# Events left undispatched this long are the sweeper's (their job was lost or never enqueued).
UNDISPATCHED_GRACE = timedelta(seconds=2)
# A delivery job keeps draining its endpoint's due attempts for at most this long / this many,
# well within the job timeout; whatever is left has jobs of its own or the sweeper's.
DRAIN_SECONDS = 30.0
DRAIN_LIMIT = 1000


def startup(ctx: dict[str, Any]) -> None:
    """Create the worker's delivery machinery once (called from the worker's `on_startup`).

    arq hands every job a shallow copy of the worker's context, so anything a job stores in
    `ctx` is lost when the job ends: the HTTP client (its connection pool and TLS context) and
    the matcher cache must live in the worker's own context, created here.
    """
    _deliverer(ctx)
    ctx.setdefault("subscription_index", SubscriptionIndex())


def _deliverer(ctx: dict[str, Any]) -> Deliverer:
    deliverer: Deliverer | None = ctx.get("deliverer")
    if deliverer is None:
        settings: Settings = ctx["settings"]
        deliverer = Deliverer(
            sessionmaker=ctx["sessionmaker"],
            settings=settings,
            client=guarded_client(
                parse_networks(settings.outbound_allow_networks),
                connect_timeout=settings.webhook_connect_timeout,
                total_timeout=settings.webhook_timeout,
            ),
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )
        ctx["deliverer"] = deliverer
    return deliverer


async def close(ctx: dict[str, Any]) -> None:
    """Release the worker's HTTP client (called on worker shutdown)."""
    deliverer: Deliverer | None = ctx.pop("deliverer", None)
    if deliverer is not None:
        await deliverer.client.aclose()


async def _enqueue_delivery(
    ctx: dict[str, Any], delivery_id: uuid.UUID, attempt_count: int, **options: Any
) -> None:
    await enqueue(
        ctx.get("redis"),
        DELIVER_JOB,
        str(delivery_id),
        _job_id=deliver_job_id(delivery_id, attempt_count),
        **options,
    )


async def _enqueue_per_endpoint(ctx: dict[str, Any], due: list[tuple[uuid.UUID, int, str]]) -> None:
    """Enqueue delivery jobs, at most the per-endpoint bound of them per endpoint.

    More would only find the endpoint at its bound and skip: the jobs that get a slot drain the
    endpoint's other due attempts themselves (`deliver_outbound`), and the sweeper re-enqueues
    whatever is still due, so capping loses nothing and saves a queue round trip per delivery.
    """
    bound = max(1, ctx["settings"].webhook_max_concurrency_per_endpoint)
    per_host: dict[str, int] = {}
    for delivery_id, attempt_count, host in due:
        if per_host.get(host, 0) >= bound:
            continue
        per_host[host] = per_host.get(host, 0) + 1
        await _enqueue_delivery(ctx, delivery_id, attempt_count)


async def dispatch_events(ctx: dict[str, Any], event_ids: list[int] | None = None) -> int:
    """Fan undispatched events (these ids, or any) out into deliveries and enqueue them."""
    settings: Settings = ctx["settings"]
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    index: SubscriptionIndex = ctx.setdefault("subscription_index", SubscriptionIndex())
    handled_total = 0
    for _ in range(50):
        async with sessionmaker() as session, session.begin():
            handled, created = await dispatch_batch(
                session, index, event_ids=event_ids, max_attempts=len(settings.retry_delays) + 1
            )
        if created:
            async with sessionmaker() as session:
                hosts = (
                    await session.execute(
                        select(OutboundDelivery.id, OutboundDelivery.endpoint_host).where(
                            OutboundDelivery.id.in_(created)
                        )
                    )
                ).all()
            await _enqueue_per_endpoint(ctx, [(delivery_id, 0, host) for delivery_id, host in hosts])
        handled_total += handled
        if handled == 0 or event_ids is not None:
            break
    return handled_total


async def _send(
    ctx: dict[str, Any], deliverer: Deliverer, delivery: OutboundDelivery, entry_id: uuid.UUID
) -> str:
    """Send a leased attempt; enqueue its retry when it is due soon."""
    plan = await attempt(deliverer, delivery, entry_id)
    if plan is None:
        return "lease lost"
    if plan.status == "pending" and plan.delay is not None and plan.delay <= SHORT_WAIT_SECONDS:
        await _enqueue_delivery(ctx, delivery.id, plan.attempt_count, _defer_by=plan.delay)
    return plan.status


async def deliver_outbound(ctx: dict[str, Any], delivery_id: str) -> str:
    """Send one attempt of a delivery if it is due and this worker gets its lease.

    Then, while it holds one of the endpoint's slots, keep sending the endpoint's due attempts
    back to back (each under its own lease, the per-endpoint bound re-checked every time).
    Without this, a job that finds its endpoint at the bound could only wait for the sweeper;
    with it, the endpoint's backlog drains at the bound's full concurrency.
    """
    deliverer = _deliverer(ctx)
    leased = await lease(deliverer, uuid.UUID(delivery_id))
    if leased is None:
        return "skipped"
    result = await _send(ctx, deliverer, *leased)
    host = leased[0].endpoint_host
    deadline = time.monotonic() + DRAIN_SECONDS
    worker = ctx.get("arq_worker")
    for _ in range(DRAIN_LIMIT):
        # A worker that is shutting down takes no new work (SIGTERM: finish what runs, nothing more).
        if time.monotonic() > deadline or not getattr(worker, "allow_pick_jobs", True):
            break
        leased = await lease(deliverer, host=host)
        if leased is None:
            break
        await _send(ctx, deliverer, *leased)
    return result


async def sweep_outbound(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-enqueue what Redis may have lost: undispatched events, due deliveries, lapsed leases."""
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    now = utcnow()
    async with sessionmaker() as session:
        undispatched = await session.scalar(
            select(Event.id)
            .where(Event.dispatched_at.is_(None), Event.created_at < now - UNDISPATCHED_GRACE)
            .limit(1)
        )
        due = (
            await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.attempt_count, OutboundDelivery.endpoint_host)
                .where(OutboundDelivery.status == "pending", OutboundDelivery.next_attempt_at <= now)
                .order_by(OutboundDelivery.next_attempt_at)
                .limit(SWEEP_LIMIT)
            )
        ).all()
        stale = (
            await session.execute(
                select(OutboundDelivery.id, OutboundDelivery.attempt_count, OutboundDelivery.endpoint_host)
                .where(OutboundDelivery.status == "started", OutboundDelivery.locked_until < now)
                .limit(SWEEP_LIMIT)
            )
        ).all()
    if undispatched is not None:
        await enqueue(ctx.get("redis"), "dispatch_events", None, _job_id=f"dispatch-sweep:{int(time.time())}")
    # Lapsed leases first: each frees a slot of its endpoint.
    await _enqueue_per_endpoint(ctx, [(row[0], row[1], row[2]) for row in [*stale, *due]])
    return {"undispatched": int(undispatched is not None), "due": len(due), "stale": len(stale)}


async def purge_webhook_logs(ctx: dict[str, Any]) -> int:
    """Delete log entries, finished deliveries and dispatched events older than the retention."""
    settings: Settings = ctx["settings"]
    sessionmaker: async_sessionmaker[AsyncSession] = ctx["sessionmaker"]
    cutoff = utcnow() - timedelta(days=settings.webhook_log_retention_days)
    deleted = 0
    for table, condition in (
        (WebhookLogEntry, WebhookLogEntry.created_at < cutoff),
        (
            OutboundDelivery,
            (OutboundDelivery.completed_at < cutoff) & OutboundDelivery.status.in_(("successful", "failed")),
        ),
        (Event, (Event.created_at < cutoff) & Event.dispatched_at.is_not(None)),
    ):
        while True:
            async with sessionmaker() as session, session.begin():
                ids = select(table.id).where(condition).limit(PURGE_BATCH).scalar_subquery()
                result = await session.execute(delete(table).where(table.id.in_(ids)))
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < PURGE_BATCH:
                break
    if deleted:
        logger.info("purged %s webhook log rows older than %s", deleted, cutoff)
    return deleted


def functions() -> list[Any]:
    # keep_result=0: a finished job leaves no key behind, so the same job id can be enqueued again.
    return [
        func(dispatch_events, keep_result=0, max_tries=3),
        func(deliver_outbound, keep_result=0, max_tries=3, timeout=300),
        func(sweep_outbound, keep_result=0),
        func(purge_webhook_logs, keep_result=0),
    ]


def cron_jobs() -> list[Any]:
    interval = max(1, min(get_settings().webhook_sweep_interval_seconds, 30))
    return [
        cron(
            sweep_outbound,
            second=set(range(0, 60, interval)),
            run_at_startup=True,
            unique=True,
            keep_result=0,
        ),
        cron(purge_webhook_logs, minute={17}, second={30}, unique=True, keep_result=0),
    ]
