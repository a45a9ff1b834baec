"""webhook_log_entries by day: partitions ahead of time, retention by whole partitions, rows that
landed in DEFAULT moved to their day, and keyset pages that cross partition boundaries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from apps_api.delivery import partitions
from apps_api.models import WebhookLogEntry
from apps_api.models.base import utcnow
from apps_api.settings import Settings
from tests.fixtures.factories import Tenant, make_app, make_log_entry


async def committing_connection(settings: Settings) -> asyncpg.Connection:
    """A connection of its own, committing: partition DDL is not rolled back with the test."""
    assert settings.database_url is not None
    return await asyncpg.connect(
        settings.database_url.replace("postgresql+asyncpg://", "postgresql://"),
        # Behind PgBouncer (APPS_API_TEST_PGBOUNCER=1), as the service's connections are.
        statement_cache_size=max(settings.db_statement_cache_size, 0),
    )


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await committing_connection(settings)
    try:
        yield connection
    finally:
        await connection.close()


async def _partition_of(connection: asyncpg.Connection, entry_id: uuid.UUID) -> str:
    name: str = await connection.fetchval(
        "SELECT tableoid::regclass::text FROM webhook_log_entries WHERE id = $1", entry_id
    )
    return name


async def test_the_log_is_partitioned_by_day_with_partitions_ahead(raw: asyncpg.Connection) -> None:
    assert (
        await raw.fetchval(
            "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = $1::regclass",
            "webhook_log_entries",
        )
        == "r"
    )
    now = utcnow()
    assert await partitions.days_ahead(raw, now=now) >= partitions.AHEAD_DAYS - 1
    assert await raw.fetchval("SELECT to_regclass($1) IS NOT NULL", partitions.DEFAULT_PARTITION)


async def ensure_partitions(connection: asyncpg.Connection, *days: datetime) -> None:
    """The partitions of these days (a fresh database has them from its migration's day on)."""
    existing = await partitions.daily_partitions(connection)
    async with connection.transaction():
        for day in {moment.date() for moment in days} - set(existing):
            await partitions.create_partition(connection, day)


async def _insert_entry(connection: asyncpg.Connection, created_at: datetime) -> uuid.UUID:
    """A log entry (and its delivery) committed with the given creation time."""
    delivery_id, entry_id = uuid.uuid4(), uuid.uuid4()
    app_id, org_id = uuid.uuid4(), uuid.uuid4()
    async with connection.transaction():
        await connection.execute(
            """
            INSERT INTO outbound_deliveries (id, kind, app_id, organization_id, method, endpoint_url,
                endpoint_host, channel, action, resource_id, payload, message_id, status, attempt_count,
                max_attempts, next_attempt_at, created_at, updated_at)
            VALUES ($1, 'trigger', $2, $3, 'POST', 'https://h.example.com/x', 'https://h.example.com:443',
                '/c', 'added', 'r', '{}', $4, 'successful', 1, 1, $5, $5, $5)
            """,
            delivery_id,
            app_id,
            org_id,
            f"msg_{delivery_id.hex}",
            created_at,
        )
        await connection.execute(
            """
            INSERT INTO webhook_log_entries (id, delivery_id, app_id, organization_id, endpoint_url, action,
                resource_id, channel, status, retry_index, created_at, updated_at, scheduled_at)
            VALUES ($1, $2, $3, $4, 'https://h.example.com/x', 'added', 'r', '/c', 'successful', 0,
                $5, $5, $5)
            """,
            entry_id,
            delivery_id,
            app_id,
            org_id,
            created_at,
        )
    return entry_id


async def test_maintenance_creates_ahead_moves_default_rows_and_drops_whole_days(
    raw: asyncpg.Connection,
) -> None:
    now = utcnow()
    await ensure_partitions(raw, now - timedelta(days=6))
    # Written while its day had no partition (the worker was down): DEFAULT took it.
    far = now + timedelta(days=partitions.AHEAD_DAYS + 3)
    waiting = await _insert_entry(raw, far)
    assert await _partition_of(raw, waiting) == partitions.DEFAULT_PARTITION
    # A past day in retention without its partition (loaded in bulk, or the worker was down).
    stranded_day = (now - timedelta(days=4)).date()
    existing = await partitions.daily_partitions(raw)
    if stranded_day in existing:
        await raw.execute(f"ALTER TABLE webhook_log_entries DETACH PARTITION {existing[stranded_day]}")
        await raw.execute(f"DROP TABLE {existing[stranded_day]}")
    stranded = await _insert_entry(raw, now - timedelta(days=4))
    assert await _partition_of(raw, stranded) == partitions.DEFAULT_PARTITION
    # A day long past retention, with its partition.
    old_day = datetime(2020, 1, 1, 12, tzinfo=UTC)
    async with raw.transaction():
        await partitions.create_partition(raw, old_day.date())
    expired = await _insert_entry(raw, old_day)
    assert await _partition_of(raw, expired) == partitions.partition_name(old_day.date())

    done = await partitions.maintain(raw, now=now, retention_days=7, ahead_days=partitions.AHEAD_DAYS + 3)

    assert partitions.partition_name(far.date()) in done.created and done.moved_rows == 2
    assert await _partition_of(raw, waiting) == partitions.partition_name(far.date())
    assert await _partition_of(raw, stranded) == partitions.partition_name(stranded_day)
    assert done.dropped == [partitions.partition_name(old_day.date())]
    assert await raw.fetchval("SELECT count(*) FROM webhook_log_entries WHERE id = $1", expired) == 0
    assert await raw.fetchval("SELECT to_regclass($1)", partitions.partition_name(old_day.date())) is None
    # Today's partition and the days of the retention window stay.
    existing = await partitions.daily_partitions(raw)
    assert now.date() in existing and (now - timedelta(days=6)).date() in existing
    # Idempotent: a second run (another worker) finds nothing to do.
    again = await partitions.maintain(raw, now=now, retention_days=7, ahead_days=partitions.AHEAD_DAYS + 3)
    assert (again.created, again.dropped, again.moved_rows) == ([], [], 0)


async def test_the_partition_holding_the_retention_cutoff_survives_maintenance(
    raw: asyncpg.Connection,
) -> None:
    # Noon, so the cutoff falls inside its day: that day's partition ends after the cutoff and
    # holds entries still within retention; only partitions that end by the cutoff may go.
    now = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    cutoff = now - timedelta(days=7)
    await ensure_partitions(raw, cutoff)
    within = await _insert_entry(raw, cutoff + timedelta(hours=1))
    assert await _partition_of(raw, within) == partitions.partition_name(cutoff.date())

    done = await partitions.maintain(raw, now=now, retention_days=7)

    assert partitions.partition_name(cutoff.date()) not in done.dropped
    assert await _partition_of(raw, within) == partitions.partition_name(cutoff.date())


async def test_maintenance_waits_for_a_delivery_delete_rather_than_deadlocking_with_it(
    raw: asyncpg.Connection, settings: Settings
) -> None:
    """Attaching a partition locks the DEFAULT partition, then outbound_deliveries (the foreign
    key); deleting a delivery locks them the other way round (its cascade into the log)."""
    assert settings.database_url is not None
    other = await asyncpg.connect(
        settings.database_url.replace("postgresql+asyncpg://", "postgresql://"),
        statement_cache_size=max(settings.db_statement_cache_size, 0),
    )
    try:
        now = utcnow()
        ahead = partitions.AHEAD_DAYS + 20
        far = now + timedelta(days=ahead)
        entry = await _insert_entry(raw, far)  # no partition for its day yet: DEFAULT holds it
        assert await _partition_of(raw, entry) == partitions.DEFAULT_PARTITION
        delivery_id = await raw.fetchval("SELECT delivery_id FROM webhook_log_entries WHERE id = $1", entry)
        deleting = other.transaction()
        await deleting.start()
        await other.execute("UPDATE outbound_deliveries SET updated_at = now() WHERE id = $1", delivery_id)
        maintenance = asyncio.create_task(
            partitions.maintain(raw, now=now, retention_days=7, ahead_days=ahead)
        )
        # Any waiter on outbound_deliveries in this database: behind PgBouncer the backend's
        # pid is not the one the client sees.
        while not await other.fetchval(
            "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted"
            " AND relation = 'outbound_deliveries'::regclass"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ):
            assert not maintenance.done(), maintenance  # it must wait for the open delete
            await asyncio.sleep(0.02)
        await other.execute("DELETE FROM outbound_deliveries WHERE id = $1", delivery_id)
        await deleting.commit()
        done = await maintenance
    finally:
        await other.close()
    assert partitions.partition_name(far.date()) in done.created
    assert done.moved_rows == 0  # the delete took the row with it
    assert await raw.fetchval("SELECT count(*) FROM webhook_log_entries WHERE id = $1", entry) == 0


async def test_keyset_pages_cross_partition_boundaries(
    raw: asyncpg.Connection, session: AsyncSession, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    now = utcnow()
    await ensure_partitions(raw, *(now - timedelta(days=days_ago) for days_ago in range(4)))
    app = await make_app(session, tenant.organization)
    created: list[WebhookLogEntry] = []
    for days_ago in (0, 1, 2, 3):
        for n in range(3):
            entry = await make_log_entry(
                session, app_id=app.id, organization_id=tenant.org_id, resource_id=f"{days_ago}-{n}"
            )
            entry.created_at = now - timedelta(days=days_ago, minutes=n)
            created.append(entry)
    await session.flush()
    expected = [str(entry.id) for entry in sorted(created, key=lambda e: (e.created_at, e.id), reverse=True)]

    seen: list[str] = []
    url: str | None = f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhook_log_entries?page_size=5"
    while url:
        response = await client.get(url, headers=tenant.headers)
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.json()["results"]]
        url = response.json()["next"]
    assert seen == expected  # newest first, each once, across four daily partitions

    since = (now - timedelta(days=1, hours=1)).isoformat()
    response = await client.get(
        f"/api/v5/orgs/{tenant.org_id}/owned_apps/{app.id}/webhook_log_entries",
        params={"created_at_gte": since, "page_size": 100},
        headers=tenant.headers,
    )
    assert [item["id"] for item in response.json()["results"]] == expected[:6]


async def test_a_log_list_reads_only_the_partitions_of_its_days(raw: asyncpg.Connection) -> None:
    now = utcnow()
    await ensure_partitions(raw, *(now - timedelta(days=days_ago) for days_ago in range(4)))
    since = now - timedelta(days=1)
    plan = "\n".join(
        row[0]
        for row in await raw.fetch(
            """
            EXPLAIN SELECT id FROM webhook_log_entries
            WHERE app_id = $1 AND created_at >= $2 ORDER BY created_at DESC, id DESC LIMIT 25
            """,
            uuid.uuid4(),
            since,
        )
    )
    daily = await partitions.daily_partitions(raw)
    read = {day for day, name in daily.items() if name in plan}
    assert since.date() in read and now.date() in read, plan
    # The days before `since` are pruned (the days ahead are empty, and cost one probe each).
    assert not any(day < since.date() for day in read), plan


def test_partitions_are_made_the_week_ahead_the_readme_alerts_on() -> None:
    # README, Operations: "after 7 days without maintenance, entries land in the DEFAULT partition".
    assert partitions.AHEAD_DAYS == 7


async def test_maintenance_makes_exactly_the_days_ahead_and_drops_what_ends_by_the_cutoff(
    raw: asyncpg.Connection,
) -> None:
    """On a clock long past (so today's partitions are in its future, untouched): `now` at
    midnight puts the cutoff on a partition boundary. The partition ending exactly at the cutoff
    holds only expired entries and goes; the next one stays; `ahead_days` days after today are
    made, not one more."""
    now = datetime(2001, 1, 10, tzinfo=UTC)
    cutoff = now - timedelta(days=7)
    ends_at_cutoff, starts_at_cutoff = (cutoff - timedelta(days=1)).date(), cutoff.date()
    made = [partitions.partition_name((now + timedelta(days=n)).date()) for n in range(3)]
    try:
        async with raw.transaction():
            for day in (ends_at_cutoff, starts_at_cutoff):
                await partitions.create_partition(raw, day)
        assert await partitions.days_ahead(raw, now=now) == -1

        done = await partitions.maintain(raw, now=now, retention_days=7, ahead_days=2)

        assert done.dropped == [partitions.partition_name(ends_at_cutoff)]
        assert done.created == made
        assert await partitions.days_ahead(raw, now=now) == 2
        existing = await partitions.daily_partitions(raw)
        assert starts_at_cutoff in existing and ends_at_cutoff not in existing
    finally:
        existing = await partitions.daily_partitions(raw)
        for day, name in existing.items():
            if day.year == 2001:
                await raw.execute(f"ALTER TABLE webhook_log_entries DETACH PARTITION {name}")
                await raw.execute(f"DROP TABLE {name}")
