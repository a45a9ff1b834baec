"""The benchmark data set, written through the real (alembic-migrated) schema in one transaction.

2,000 organizations (each with an admin user, an API token and an icon asset), 10,000 apps
(30 % public and approved, 10 % public awaiting approval, 30 % available to partners, 30 %
private; half with an icon; 20 % requiring an app user), 2,000 partnerships, 100,000
installations (50 per organization, bot users where the app requires one, `installation_count`
recomputed), 10,029 webhooks with 100,087 channel subscriptions, 500,000 finished deliveries
and their 1,000,000 log entries (a failed attempt, then a successful one).

Organization 0 is the big tenant the read benchmarks use: it owns 200 apps and has 50 apps
installed (2 pages), and its app 0 has 30 webhooks (2 pages) and 10,000 log entries (400 pages of 25). Ids are deterministic (`md5(...)::uuid`) and API keys
derive from the organization number (`token_key(n)`), so the harness needs no state file.

A marker table `bench_dataset` is written in the same transaction: a second run finds it and
reuses the data (`--force` reseeds). Rows created by benchmark runs live in organizations named
`bench-run-*` and are removed by `cleanup_run_data()`.

    .venv/bin/python -m bench.seed [--force] [--scale N]

`--scale N` seeds N times the data set into the database `<bench database>_xN` (the scale
phase's); organization 0 and app 0 keep their shape, everything around them grows N times.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import dataset

VERSION = 2  # 2: app 0 has 30 webhooks (the webhook list's benchmark)
RUN_PREFIX = "bench-run-"
LOG_DAYS = 6  # the seeded deliveries and log entries span the last six days

TABLES = (
    "webhook_log_entries",
    "outbound_deliveries",
    "events",
    "webhook_channel_subscriptions",
    "webhooks",
    "app_user_codes",
    "api_tokens",
    "app_installations",
    "app_shares",
    "apps",
    "partnerships",
    "assets",
    "users",
    "organizations",
)


def det_uuid(kind: str, number: int | str) -> uuid.UUID:
    """The id the seed gives row `number` of `kind` (PostgreSQL: `md5('bench:kind:number')::uuid`)."""
    return uuid.UUID(hashlib.md5(f"bench:{kind}:{number}".encode()).hexdigest())


def token_key(organization: int) -> str:
    """The API key of organization `n`'s admin (its SHA-256 digest is what the table stores)."""
    return "bench_" + hashlib.md5(f"bench:key:{organization}".encode()).hexdigest()


def org_id(organization: int) -> uuid.UUID:
    return det_uuid("org", organization)


def app_id(number: int) -> uuid.UUID:
    return det_uuid("app", number)


async def seeded(connection: asyncpg.Connection) -> bool:
    exists = await connection.fetchval("SELECT to_regclass('bench_dataset') IS NOT NULL")
    if not exists:
        return False
    return bool(await connection.fetchval("SELECT count(*) FROM bench_dataset WHERE version = $1", VERSION))


async def counts(connection: asyncpg.Connection) -> dict[str, int]:
    result = {}
    for table in (
        "organizations",
        "apps",
        "app_installations",
        "webhooks",
        "webhook_channel_subscriptions",
        "webhook_log_entries",
    ):
        result[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    return result


async def cleanup_run_data(connection: asyncpg.Connection) -> None:
    """Remove what benchmark runs created: `bench-run-*` organizations and everything of theirs."""
    orgs = [
        row["id"]
        for row in await connection.fetch("SELECT id FROM organizations WHERE name LIKE $1", RUN_PREFIX + "%")
    ]
    if orgs:
        async with connection.transaction():
            await connection.execute(
                "DELETE FROM outbound_deliveries WHERE organization_id = ANY($1::uuid[])", orgs
            )
            await connection.execute("DELETE FROM events WHERE organization_id = ANY($1::uuid[])", orgs)
            await connection.execute("DELETE FROM organizations WHERE id = ANY($1::uuid[])", orgs)
    # The seed has no events: any left are from runs (dispatched or not).
    await connection.execute("DELETE FROM events")


async def cleanup(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await cleanup_run_data(connection)
    finally:
        await connection.close()


async def cleanup_run_data_events(url: str) -> None:
    """Drop the events runs left undispatched (the write benchmark runs without a worker)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("DELETE FROM events")
    finally:
        await connection.close()


async def log_partitions(connection: asyncpg.Connection) -> None:
    """The daily log partitions of the seeded days: the log is written straight into them.

    Without them every seeded entry lands in the DEFAULT partition and the worker's first
    maintenance moves them all; the scale phase also purges one seeded day's partition.
    """
    from apps_api.delivery import partitions

    existing = await partitions.daily_partitions(connection)
    today = datetime.now(UTC).date()
    for back in range(LOG_DAYS + 1):
        day = today - timedelta(days=back)
        if day not in existing:
            await partitions.create_partition(connection, day)


# Bulk-loaded tables whose secondary indexes are built once after the load: maintaining them row by
# row was most of the seeding time (10x: 461 s with them in place).
BULK_TABLES = (
    "outbound_deliveries",
    "webhook_log_entries",
    "app_installations",
    "webhook_channel_subscriptions",
)


async def _drop_secondary_indexes(connection: asyncpg.Connection) -> list[str]:
    """Drop the bulk tables' indexes that back no constraint; returns their definitions.

    A partitioned table's index is dropped on the parent (its partitions' go with it).
    """
    rows = await connection.fetch(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes AS i
        WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)
        ORDER BY i.indexname
        """,
        list(BULK_TABLES),
    )
    for row in rows:
        await connection.execute(f'DROP INDEX "{row["indexname"]}"')
    return [row["indexdef"] for row in rows]


async def _create_indexes(connection: asyncpg.Connection, definitions: list[str]) -> None:
    """Build the dropped indexes again, on a partitioned table through all of its partitions."""
    await connection.execute("SET LOCAL maintenance_work_mem = '1GB'")
    for definition in definitions:
        await connection.execute(definition.replace(" ON ONLY ", " ON ", 1))


async def seed(url: str, *, force: bool = False, log: bool = True, factor: int = 1) -> bool:
    """Seed `factor` times the data set unless it is there already; returns True when it seeded."""
    connection = await asyncpg.connect(url)
    try:
        database = await connection.fetchval("SELECT current_database()")
        if "bench" not in database:
            raise SystemExit(f"refusing to seed database {database!r}: its name must contain 'bench'")
        if not force and await seeded(connection):
            await cleanup_run_data(connection)
            return False
        started = time.monotonic()
        async with connection.transaction():
            await connection.execute("SET LOCAL synchronous_commit = off")
            await connection.execute("SET LOCAL work_mem = '256MB'")
            # The rows are consistent by construction: no foreign key check per row (the
            # log's check against outbound_deliveries was most of its insert time). The only
            # other triggers fire on DELETE from app_installations and INSERT into events.
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
            await connection.execute("DROP TABLE IF EXISTS bench_dataset")
            await log_partitions(connection)
            indexes = await _drop_secondary_indexes(connection)
            for statement in dataset.seed_sql(factor):
                step = time.monotonic()
                status = await connection.execute(statement)
                if log:
                    first = " ".join(statement.split()[:3])
                    print(f"  {first:<40} {status:<22} {time.monotonic() - step:6.1f} s", flush=True)
            step = time.monotonic()
            await _create_indexes(connection, indexes)
            if log:
                print(
                    f"  {'CREATE INDEX':<40} {len(indexes):<22} {time.monotonic() - step:6.1f} s", flush=True
                )
            await connection.execute(
                "CREATE TABLE bench_dataset (version int NOT NULL, seeded_at timestamptz NOT NULL)"
            )
            await connection.execute("INSERT INTO bench_dataset VALUES ($1, now())", VERSION)
        # VACUUM too: a week of log in service is all-visible (autovacuum has long been through it);
        # a fresh load is not until autovacuum reaches it, some time into the first run.
        await connection.execute("VACUUM ANALYZE")
        if log:
            size = await connection.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
            print(
                f"  seeded {factor}x in {time.monotonic() - started:.0f} s, database {size}: "
                f"{await counts(connection)}",
                flush=True,
            )
        return True
    finally:
        await connection.close()


def main() -> None:
    from bench.env import scaled_services, start_services

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--force", action="store_true", help="drop the data set and seed it again")
    parser.add_argument("--scale", type=int, default=1, help="seed N times the data set (default 1)")
    args = parser.parse_args()
    services = start_services()
    try:
        # N times the data set goes to its own database, as in `python -m bench --only scale`.
        target = services if args.scale == 1 else scaled_services(services, args.scale)
        if not asyncio.run(seed(target.asyncpg_url, force=args.force, factor=args.scale)):
            print("data set present; reused (use --force to reseed)")
    finally:
        services.stop()


if __name__ == "__main__":
    main()
