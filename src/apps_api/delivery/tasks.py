"""arq jobs of the delivery pipeline: dispatcher, deliverer, sweeper, log partitions and purge.

Each job reads the worker's context (`context.worker_context`) and calls the module that does
the work: listener.py (dispatch), engine.py (the pumps), sweeper.py, maintenance.py.

Redis only makes work happen promptly; PostgreSQL holds all of it. The sweeper finds
whatever Redis lost (a restart without persistence), whatever a killed worker left behind
(lapsed leases) and events whose dispatch job was never enqueued (an API process that died
right after its commit), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from arq import cron
from arq.worker import func
from sqlalchemy import select

from apps_api.delivery import maintenance, sweeper
from apps_api.delivery.context import WorkerContext, worker_context
from apps_api.delivery.engine import pump_endpoint
from apps_api.delivery.listener import EventListener, dispatch_round, share_endpoints
from apps_api.models import OutboundDelivery
from apps_api.settings import Settings

logger = logging.getLogger(__name__)


def startup(context: WorkerContext) -> None:
    """Start dispatching events as they commit (called once from the worker's start-up)."""
    context.listener = EventListener(context)
    context.listener.start()


async def close(context: WorkerContext) -> None:
    """Stop the event listener, let its pumps finish, release the HTTP client (worker shutdown)."""
    listener, context.listener = context.listener, None
    if listener is not None:
        await listener.stop(grace=context.settings.webhook_timeout + 5)
    await context.deliverer.client.aclose()


async def dispatch_events(ctx: dict[str, Any]) -> int:
    """Fan every undispatched event out into deliveries, then send them (the sweeper's job).

    The deliveries of the first few endpoints are sent by this job (no second queue hop).
    """
    context = worker_context(ctx)
    handled, hosts = await dispatch_round(context)
    inline = await share_endpoints(context, hosts)
    if inline:
        # One endpoint's pump failing must not abandon the others (gather would raise at once).
        results = await asyncio.gather(
            *(pump_endpoint(context, host) for host in inline), return_exceptions=True
        )
        for host, result in zip(inline, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("pump of %s stopped (%s)", host, type(result).__name__)
    return handled


async def deliver_outbound(ctx: dict[str, Any], delivery_id: str | None, host: str | None = None) -> str:
    """Send the due attempts of a delivery's endpoint (or of `host`) while they last."""
    context = worker_context(ctx)
    if host is None and delivery_id is not None:
        async with context.sessionmaker() as session:
            host = await session.scalar(
                select(OutboundDelivery.endpoint_host).where(OutboundDelivery.id == uuid.UUID(delivery_id))
            )
    if host is None:
        return "skipped"
    recorded = await pump_endpoint(context, host)
    return f"{recorded} attempts" if recorded else "skipped"


async def sweep_outbound(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-enqueue what Redis may have lost: undispatched events, due deliveries, lapsed leases."""
    context = worker_context(ctx)
    return await sweeper.sweep(
        settings=context.settings, sessionmaker=context.sessionmaker, redis=context.redis
    )


async def maintain_log_partitions(ctx: dict[str, Any]) -> dict[str, int]:
    """Create the log's daily partitions ahead of time and drop those past retention (hourly)."""
    context = worker_context(ctx)
    return await maintenance.maintain_partitions(settings=context.settings, engine=context.engine)


async def purge_webhook_logs(ctx: dict[str, Any]) -> int:
    """Delete finished deliveries and dispatched events older than the retention (hourly)."""
    context = worker_context(ctx)
    return await maintenance.purge(settings=context.settings, sessionmaker=context.sessionmaker)


def functions() -> list[Any]:
    # keep_result=0: a finished job leaves no key behind, so the same job id can be enqueued again.
    return [
        func(dispatch_events, keep_result=0, max_tries=3),
        func(deliver_outbound, keep_result=0, max_tries=3, timeout=300),
        func(sweep_outbound, keep_result=0),
        func(purge_webhook_logs, keep_result=0),
        func(maintain_log_partitions, keep_result=0),
    ]


def cron_jobs(settings: Settings) -> list[Any]:
    interval = max(1, min(settings.webhook_sweep_interval_seconds, 30))
    # A unique cron job's id is `<name>:<time>` and arq's job keys are global: named after the
    # queue, deployments (or test runs) sharing a Redis never skip each other's runs.
    return [
        cron(
            sweep_outbound,
            name=f"cron:{settings.queue_name}:sweep_outbound",
            second=set(range(0, 60, interval)),
            run_at_startup=True,
            unique=True,
            keep_result=0,
        ),
        # Partitions first (at start-up too: a worker that was down catches up), then the purge.
        cron(
            maintain_log_partitions,
            name=f"cron:{settings.queue_name}:maintain_log_partitions",
            minute={15},
            second={0},
            run_at_startup=True,
            unique=True,
            keep_result=0,
        ),
        cron(
            purge_webhook_logs,
            name=f"cron:{settings.queue_name}:purge_webhook_logs",
            minute={17},
            second={30},
            unique=True,
            keep_result=0,
        ),
    ]
