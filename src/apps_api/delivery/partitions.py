"""Daily partitions of `webhook_log_entries` (range on `created_at`, UTC days; migration 0004_scale).

The worker creates the partitions of the next `AHEAD_DAYS` days ahead of time, and retention
detaches and drops whole partitions once their last day is older than
`APPS_API_WEBHOOK_LOG_RETENTION_DAYS`: no row is deleted one by one, so the table never bloats.
A DEFAULT partition catches rows no daily partition takes (the worker was down for longer than
`AHEAD_DAYS`, or rows loaded in bulk), so a write never fails for want of a partition; the next
maintenance moves the rows still in retention into their day's partition.

Partitions are named `webhook_log_entries_pYYYYMMDD` and cover [that day 00:00 UTC, next day).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

logger = logging.getLogger(__name__)

TABLE = "webhook_log_entries"
DEFAULT_PARTITION = f"{TABLE}_default"
REFERENCED = "outbound_deliveries"  # the log's foreign key points here
AHEAD_DAYS = 7
_DAILY = re.compile(rf"^{TABLE}_p(\d{{8}})$")
# Partition DDL waits at most this long for a lock (a long query holding it): the next run
# tries again rather than queueing the log's reads and writes behind the DDL.
_LOCK_TIMEOUT = "2s"
# One maintainer at a time across workers (CREATE TABLE of the same partition would race).
_MAINTENANCE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('apps_api:log_partitions', 0))"


@dataclass
class Maintenance:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved_rows: int = 0
    purged_default_rows: int = 0


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


async def daily_partitions(connection: asyncpg.Connection) -> dict[date, str]:
    """The daily partitions that exist, by day."""
    rows = await connection.fetch(
        """
        SELECT child.relname FROM pg_inherits
        JOIN pg_class AS child ON child.oid = pg_inherits.inhrelid
        WHERE pg_inherits.inhparent = $1::regclass
        """,
        TABLE,
    )
    days: dict[date, str] = {}
    for row in rows:
        match = _DAILY.match(row["relname"])
        if match:
            days[datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()] = row["relname"]
    return days


async def create_partition(connection: asyncpg.Connection, day: date) -> int:
    """Create `day`'s partition (in the caller's transaction); returns the rows moved from DEFAULT.

    A table attached as a partition, rather than `CREATE TABLE ... PARTITION OF`: attaching
    locks the parent only against other DDL (SHARE UPDATE EXCLUSIVE), so reads and writes of
    the log go on; the DEFAULT partition is locked while PostgreSQL checks that it holds no row
    of the new range. Rows it does hold (written while the partition was missing) are moved
    first. Attaching builds the partition's indexes and foreign key from the parent's.
    """
    name = partition_name(day)
    start, end = _bounds(day)
    await connection.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    status = await connection.execute(
        f"""
        WITH moved AS (
            DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= $1 AND created_at < $2 RETURNING *
        )
        INSERT INTO {name} SELECT * FROM moved
        """,  # noqa: S608 - fixed names
        start,
        end,
    )
    await connection.execute(
        f"ALTER TABLE {TABLE} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )
    return int(status.split()[-1])


async def _work(
    connection: asyncpg.Connection, *, now: datetime, cutoff: datetime, ahead_days: int
) -> tuple[list[date], list[str]]:
    """The days whose partition is missing and the partitions past the retention."""
    today = now.astimezone(UTC).date()
    existing = await daily_partitions(connection)
    # Past days still in retention whose rows DEFAULT took (a worker down for longer than
    # `ahead_days`, rows loaded in bulk): they get their partition too.
    stranded = await connection.fetch(
        f"""
        SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date AS day FROM {DEFAULT_PARTITION}
        WHERE created_at >= $1 AND created_at < $2
        """,  # noqa: S608 - fixed names
        cutoff,
        datetime.combine(today, time(), tzinfo=UTC),
    )
    days = [row["day"] for row in stranded] + [today + timedelta(days=n) for n in range(ahead_days + 1)]
    missing = sorted({day for day in days if day not in existing})
    expired = [name for day, name in sorted(existing.items()) if _bounds(day)[1] <= cutoff]
    return missing, expired


async def maintain(
    connection: asyncpg.Connection, *, now: datetime, retention_days: int, ahead_days: int = AHEAD_DAYS
) -> Maintenance:
    """Create the partitions of today and the next `ahead_days` days; drop those past retention.

    One transaction, serialized across workers; DDL gives up after `_LOCK_TIMEOUT` (retried on
    the next run). Rows of the DEFAULT partition older than the retention are deleted (there
    are normally none).
    """
    result = Maintenance()
    cutoff = now - timedelta(days=retention_days)
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        await connection.execute(_MAINTENANCE_LOCK)
        missing, expired = await _work(connection, now=now, cutoff=cutoff, ahead_days=ahead_days)
        if missing or expired:
            # Attaching or detaching a partition adds or drops its foreign key, which locks
            # outbound_deliveries, after the DEFAULT partition is already locked; a delete of
            # deliveries (cascading into the log) takes them the other way round. Taking the
            # referenced table first gives both one order, so they wait rather than deadlock.
            await connection.execute(f"LOCK TABLE {REFERENCED} IN SHARE ROW EXCLUSIVE MODE")
        for day in missing:
            result.moved_rows += await create_partition(connection, day)
            result.created.append(partition_name(day))
        for name in expired:
            # DETACH, then DROP: the partition's rows go with its files, none one by one.
            # (DETACH locks the parent ACCESS EXCLUSIVE for a moment: CONCURRENTLY is not
            # possible beside a DEFAULT partition.)
            await connection.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
            await connection.execute(f"DROP TABLE {name}")
            result.dropped.append(name)
        status = await connection.execute(
            f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < $1",  # noqa: S608 - fixed names
            cutoff,
        )
        result.purged_default_rows = int(status.split()[-1])
    return result


async def days_ahead(connection: asyncpg.Connection, *, now: datetime) -> int:
    """How many days after today already have their partition (0: only today, -1: not even today)."""
    existing = await daily_partitions(connection)
    day, ahead = now.astimezone(UTC).date(), -1
    while day in existing:
        ahead += 1
        day += timedelta(days=1)
    return ahead
