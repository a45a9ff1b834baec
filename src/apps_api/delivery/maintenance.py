"""Hourly maintenance: the log's daily partitions, and the purge of what outlived the retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Delete, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from apps_api.delivery import partitions
from apps_api.delivery.states import FINISHED
from apps_api.kit.driver import driver_connection
from apps_api.models import AppInstallationRemoval, Event, OutboundDelivery
from apps_api.models.base import utcnow
from apps_api.observability.delivery_metrics import LOG_PARTITION_FAILURES, LOG_PARTITIONS_AHEAD
from apps_api.settings import Settings

logger = logging.getLogger(__name__)

PURGE_BATCH = 5000


async def maintain_partitions(*, settings: Settings, engine: AsyncEngine) -> dict[str, int]:
    """Create the log's daily partitions ahead of time and drop those past retention (hourly)."""
    now = utcnow()
    try:
        async with driver_connection(engine, transaction=False) as connection:
            done = await partitions.maintain(
                connection, now=now, retention_days=settings.webhook_log_retention_days
            )
            ahead = await partitions.days_ahead(connection, now=now)
    except Exception:
        # Alert on it: after AHEAD_DAYS failed days, new entries land in the DEFAULT partition.
        LOG_PARTITION_FAILURES.inc()
        logger.exception("webhook log partition maintenance failed; retrying in an hour")
        raise
    LOG_PARTITIONS_AHEAD.set(ahead)
    if done.created or done.dropped or done.moved_rows or done.purged_default_rows:
        logger.info(
            "webhook log partitions: created %s, dropped %s, %d rows moved out of and %d purged from DEFAULT",
            done.created,
            done.dropped,
            done.moved_rows,
            done.purged_default_rows,
        )
    return {"created": len(done.created), "dropped": len(done.dropped), "days_ahead": ahead}


def purge_batches(cutoff: datetime) -> list[tuple[str, Delete]]:
    """One batch's DELETE per table the purge empties of rows older than `cutoff` (bench explains them)."""
    conditions: list[tuple[Any, ColumnElement[bool]]] = [
        (
            OutboundDelivery,
            (OutboundDelivery.completed_at < cutoff) & OutboundDelivery.status.in_(FINISHED),
        ),
        (Event, (Event.created_at < cutoff) & Event.dispatched_at.is_not(None)),
        # A removal matters only to events written before it: kept while one may be undispatched
        # (an hour of margin for the writers' clocks, which set `created_at`).
        (
            AppInstallationRemoval,
            (AppInstallationRemoval.removed_at < cutoff)
            & ~exists().where(
                Event.dispatched_at.is_(None),
                Event.created_at < AppInstallationRemoval.removed_at + timedelta(hours=1),
            ),
        ),
    ]
    return [
        (
            table.__tablename__,
            delete(table).where(
                table.id.in_(select(table.id).where(condition).limit(PURGE_BATCH).scalar_subquery())
            ),
        )
        for table, condition in conditions
    ]


async def purge(*, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Delete finished deliveries and dispatched events older than the retention.

    Log entries go by whole partitions (`maintain_partitions`).
    """
    cutoff = utcnow() - timedelta(days=settings.webhook_log_retention_days)
    deleted = 0
    for _table, statement in purge_batches(cutoff):
        while True:
            async with sessionmaker() as session, session.begin():
                result = await session.execute(statement)
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < PURGE_BATCH:
                break
    if deleted:
        logger.info("purged %s webhook log rows older than %s", deleted, cutoff)
    return deleted
