"""The scale phase's figures that are not HTTP: dispatcher CPU per event, one day's log purge, disk.

Each runs against one database (the 1x data set or the N-times one); bench/phases/scale.py puts
the two side by side.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from apps_api.worker import GC_THRESHOLDS
from bench import seed

MAX_ATTEMPTS = 8
# ~50 deliveries each (the 50 installations of an organization): ~9 ms of CPU per event here.
DISPATCH_EVENTS = 1_000


async def dispatch_cpu(url: str, organizations: int, events: int = DISPATCH_EVENTS) -> tuple[float, float]:
    """(CPU microseconds per event, deliveries per event) of the dispatcher's matching on this data.

    `dispatch.fan_out` is what the worker runs per batch of events: the installations of the
    events' organizations (one query), the matchers of their apps, `match_event` and the
    delivery rows. The events go to organizations drawn from the whole data set, on the channel
    every seeded webhook subscribes to. The matcher cache is warmed by a first pass over the
    same events, so the timed pass measures matching and the per-batch installations query, not
    matcher loading. CPU time of this process: the database's own time is not in it.
    """
    from apps_api.delivery import dispatch

    rng = random.Random(organizations)
    batches = []
    for start in range(0, events, dispatch.BATCH_SIZE):
        batch = []
        for number in range(start, min(events, start + dispatch.BATCH_SIZE)):
            org = seed.org_id(rng.randrange(organizations))
            batch.append(
                dispatch.EventRow(
                    id=number,
                    organization_id=org,
                    channel=f"/api/v5/orgs/{org}/chats",
                    action="added",
                    resource_id=f"chat-{number}",
                    resource={"id": f"chat-{number}", "status": "open"},
                    required_scope=None,
                )
            )
        batches.append(batch)
    connection = await asyncpg.connect(url)
    # The worker's collector settings (worker.tune_garbage_collector): with this process's
    # defaults the figure would be the collector's, not the dispatcher's (bench/ANALYSIS.md).
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        index = dispatch.SubscriptionIndex(max_age=3600)
        for batch in batches:
            await dispatch.fan_out(connection, batch, index, max_attempts=MAX_ATTEMPTS)
        started, deliveries = time.process_time(), 0
        for batch in batches:
            deliveries += len(await dispatch.fan_out(connection, batch, index, max_attempts=MAX_ATTEMPTS))
        return (time.process_time() - started) / events * 1e6, deliveries / events
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        await connection.close()


async def prepare(url: str) -> None:
    """The worker's log partition maintenance, once: both data sets get the same partition layout.

    A data set seeded before the seed wrote the log into daily partitions has it all in the
    DEFAULT partition, which the first maintenance moves into daily ones; a page of the log
    then walks every day's index, so the 1x and scaled sets are compared on the same layout.
    """
    from apps_api.delivery import partitions

    connection = await asyncpg.connect(url)
    try:
        done = await partitions.maintain(connection, now=datetime.now(UTC), retention_days=36500)
        if done.moved_rows:
            # The moved rows' dead copies would count in the disk row until autovacuum came by.
            await connection.execute(f"VACUUM {partitions.DEFAULT_PARTITION}")
    finally:
        await connection.close()


@dataclass
class Purge:
    partition: str
    rows: int
    detach_drop_ms: float
    delete_ms: float


async def purge_day(url: str) -> Purge:
    """One full seeded day of the log: DETACH + DROP of its partition against a DELETE of its rows.

    Each in a transaction that is rolled back, so the data set stays: the durations are those
    of the statements, not of the commit (the DROP's file unlink) nor of the vacuum the DELETE
    leaves behind (its real cost is higher). The statements are retention's
    (apps_api.delivery.partitions.maintain).
    """
    from apps_api.delivery import partitions

    connection = await asyncpg.connect(url)
    try:
        day = datetime.now(UTC).date() - timedelta(days=3)
        name = (await partitions.daily_partitions(connection))[day]
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        rows = int(await connection.fetchval(f"SELECT count(*) FROM {name}"))
        delete = await _timed(
            connection,
            [
                (
                    f"DELETE FROM {partitions.TABLE} WHERE created_at >= $1 AND created_at < $2",
                    [start, start + timedelta(days=1)],
                )
            ],
        )
        detach_drop = await _timed(
            connection,
            [
                (f"LOCK TABLE {partitions.REFERENCED} IN SHARE ROW EXCLUSIVE MODE", []),
                (f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {name}", []),
                (f"DROP TABLE {name}", []),
            ],
        )
        return Purge(name, rows, detach_drop * 1000, delete * 1000)
    finally:
        await connection.close()


async def _timed(connection: asyncpg.Connection, statements: list[tuple[str, list[object]]]) -> float:
    """Seconds the statements take in one transaction, which is then rolled back."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        started = time.perf_counter()
        for sql, parameters in statements:
            await connection.execute(sql, *parameters)
        return time.perf_counter() - started
    finally:
        await transaction.rollback()


async def database_size(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await connection.close()
